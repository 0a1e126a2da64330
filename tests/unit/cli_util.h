// Runs the real kimi-linear binary for end-to-end tests.
#pragma once
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace kl::test {

struct CmdResult {
  int rc = -1;
  std::string out, err;
};

// Runs `kimi-linear ARGS` through the shell; stdout and stderr captured separately.
inline CmdResult run_cli(const std::string& args, const std::string& stdin_text = "") {
  namespace fs = std::filesystem;
  static int counter = 0;
  const fs::path tmp = fs::temp_directory_path() /
                       ("kl_cli_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  const std::string errf = tmp.string() + ".err", inf = tmp.string() + ".in";
  {
    std::ofstream(inf) << stdin_text;
  }
  const std::string cmd = std::string(KL_BINARY) + " " + args + " <" + inf + " 2>" + errf;
  CmdResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int status = ::pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream ef(errf);
  std::stringstream ss;
  ss << ef.rdbuf();
  r.err = ss.str();
  fs::remove(errf);
  fs::remove(inf);
  return r;
}

}  // namespace kl::test
