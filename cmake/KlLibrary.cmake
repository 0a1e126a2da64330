# kl_add_layer(NAME DIR DEPS...): one static library per source folder, built from every .cpp in
# it, linking only to the layers beneath it (STYLE.md: a wrong-way include fails to build).
function(kl_add_layer name)
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  add_library(${name} STATIC ${srcs})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARGN})
endfunction()
