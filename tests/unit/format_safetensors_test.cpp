// format/safetensors: the tiny-a checkpoint, write -> read round trips, shards, and one test per
// way a file or an index can be broken (each file made here, in a temp dir).
#include "format/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>

#include "core/error.h"

namespace fs = std::filesystem;

namespace kl {
namespace {

const std::string kTinyA = std::string(KL_TEST_DATA) + "/tiny-a";

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

// A raw safetensors file: length field, `header` verbatim, then `data_size` bytes 0, 1, 2, ...
std::string raw_file(const std::string& header, size_t data_size) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; i++) out[i] = char(uint64_t(header.size()) >> (8 * i));
  out += header;
  for (size_t i = 0; i < data_size; i++) out += char(i & 0xff);
  return out;
}

// Runs f, which must throw a kl::Error whose message holds every one of `parts`.
void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no kl::Error thrown; expected one containing '" << parts.front() << "'";
  } catch (const Error& e) {
    for (const std::string& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << "message: " << e.what() << "\nmissing: " << p;
  }
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "_" + info->name();
    std::replace(name.begin(), name.end(), '/', '_');
    dir_ = fs::temp_directory_path() / ("kl_format_st_" + std::to_string(::getpid()) + "_" + name);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

// ---- the real checkpoint ------------------------------------------------------------------------

TEST_F(SafetensorsTest, TinyACheckpoint) {
  ASSERT_TRUE(SafetensorsSet::has_weights(kTinyA));
  SafetensorsSet set = SafetensorsSet::open(kTinyA);
  EXPECT_EQ(set.size(), 233u);
  EXPECT_EQ(set.files().size(), 1u);
  EXPECT_EQ(set.metadata().at("format"), "pt");
  std::vector<std::string> names = set.names();
  EXPECT_EQ(names.size(), 233u);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));

  const auto* emb = set.find("model.embed_tokens.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->view.dtype, DType::F32);
  EXPECT_EQ(emb->view.ndim, 2);
  EXPECT_EQ(emb->view.shape_str(), "[512, 128]");
  EXPECT_EQ(emb->file, kTinyA + "/model.safetensors");
  // First values, as read by Python's struct module from the file.
  const float* e = static_cast<const float*>(emb->view.data);
  EXPECT_FLOAT_EQ(e[0], 0.6788241267204285f);
  EXPECT_FLOAT_EQ(e[3], -0.5648102164268494f);

  const auto* a_log = set.find("model.layers.0.self_attn.A_log");
  ASSERT_NE(a_log, nullptr);
  EXPECT_EQ(a_log->view.shape_str(), "[1, 1, 4, 1]");
  const auto* conv = set.find("model.layers.0.self_attn.q_conv1d.weight");
  ASSERT_NE(conv, nullptr);
  EXPECT_EQ(conv->view.shape_str(), "[192, 1, 4]");
  EXPECT_EQ(set.find("lm_head.weight")->view.shape_str(), "[512, 128]");
  EXPECT_EQ(set.find("model.no_such_tensor"), nullptr);

  // Every view points at exactly the bytes the header names, and the tensors fill the data section.
  const std::string bytes = read_all(kTinyA + "/model.safetensors");
  const StHeader h = parse_safetensors(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), "tiny-a");
  ASSERT_EQ(h.tensors.size(), 233u);
  EXPECT_EQ(h.tensors[0].name, "lm_head.weight");  // first in the file (HeaderOrderIsKept covers order)
  EXPECT_EQ(h.data_start, 8u + 26944u);
  EXPECT_EQ(set.total_bytes(), bytes.size() - h.data_start);
  for (const StTensorInfo& t : h.tensors) {
    const auto* entry = set.find(t.name);
    ASSERT_NE(entry, nullptr) << t.name;
    ASSERT_EQ(entry->view.nbytes(), t.end - t.begin) << t.name;
    EXPECT_EQ(std::memcmp(entry->view.data, bytes.data() + h.data_start + t.begin, entry->view.nbytes()), 0)
        << t.name;
  }
}

// Read into memory (--no-mmap): the same bytes as the mapping, on a 2 MiB boundary, for the real
// checkpoint and for a sharded set.
TEST_F(SafetensorsTest, ReadIntoMemoryGivesTheSameViews) {
  SafetensorsSet mapped = SafetensorsSet::open(kTinyA);
  SafetensorsSet read = SafetensorsSet::open(kTinyA, FileAccess::Read);
  ASSERT_EQ(read.names(), mapped.names());
  EXPECT_EQ(read.total_bytes(), mapped.total_bytes());
  for (const std::string& name : mapped.names()) {
    const auto* a = mapped.find(name);
    const auto* b = read.find(name);
    ASSERT_EQ(b->view.nbytes(), a->view.nbytes()) << name;
    EXPECT_EQ(b->view.shape_str(), a->view.shape_str()) << name;
    EXPECT_NE(b->view.data, a->view.data) << name;  // another copy
    EXPECT_EQ(std::memcmp(b->view.data, a->view.data, a->view.nbytes()), 0) << name;
  }
}

TEST_F(SafetensorsTest, MappedFileReadModeCopiesEveryByte) {
  // Over two 2 MiB pages and a tail, so the read crosses page and chunk ends.
  const size_t n = (size_t(5) << 20) + 123;
  std::string bytes(n, '\0');
  for (size_t i = 0; i < n; i++) bytes[i] = char((i * 2654435761u) >> 13);
  const std::string file = path("blob.bin");
  write_all(file, bytes);
  MappedFile m(file, FileAccess::Read);
  ASSERT_EQ(m.size(), n);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(m.data()) % (size_t(2) << 20), 0u);
  EXPECT_EQ(std::memcmp(m.data(), bytes.data(), n), 0);
  MappedFile moved = std::move(m);  // the bytes stay where they are
  EXPECT_EQ(m.data(), nullptr);
  EXPECT_EQ(std::memcmp(moved.data(), bytes.data(), n), 0);
  // An empty file reads as empty; a missing one is an error naming it.
  write_all(path("empty.bin"), "");
  EXPECT_EQ(MappedFile(path("empty.bin"), FileAccess::Read).size(), 0u);
  expect_error([&] { MappedFile(path("missing.bin"), FileAccess::Read); }, {path("missing.bin"), "cannot open"});
}

// ---- write -> read ------------------------------------------------------------------------------

TEST_F(SafetensorsTest, RoundTripOddShapes) {
  std::vector<float> f32(3 * 5 * 7);
  std::iota(f32.begin(), f32.end(), -50.0f);
  std::vector<uint16_t> bf16(13), f16(17);
  for (size_t i = 0; i < bf16.size(); i++) bf16[i] = f32_to_bf16(0.25f * float(i) - 1.0f);
  for (size_t i = 0; i < f16.size(); i++) f16[i] = f32_to_f16(0.5f * float(i) + 0.125f);
  const float scalar = 42.0f;
  const int64_t i64[4] = {-1, 2, -3, int64_t(1) << 40};
  const std::vector<StWriteTensor> tensors = {
      {"a.f32", DType::F32, {3, 5, 7}, f32.data()},
      {"b.bf16", DType::BF16, {1, 13}, bf16.data()},
      {"c.f16", DType::F16, {17}, f16.data()},
      {"d.scalar", DType::F32, {}, &scalar},
      {"e.empty", DType::F32, {0, 4}, nullptr},
      {"f.i64", DType::I64, {2, 1, 1, 2}, i64},  // at offset 484, off 8-alignment: the set copies it
  };
  const std::string file = path("rt.safetensors");
  write_safetensors(file, tensors, {{"format", "pt"}, {"note", "odd shapes"}});

  const std::string bytes = read_all(file);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ((8 + header_len) % 8, 0u);
  const StHeader h = parse_safetensors(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), file);
  ASSERT_EQ(h.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); i++) EXPECT_EQ(h.tensors[i].name, tensors[i].name);
  EXPECT_EQ(h.metadata.at("note"), "odd shapes");

  SafetensorsSet set = SafetensorsSet::open(file);
  EXPECT_EQ(set.size(), tensors.size());
  for (const StWriteTensor& t : tensors) {
    const auto* e = set.find(t.name);
    ASSERT_NE(e, nullptr) << t.name;
    EXPECT_EQ(e->view.dtype, t.dtype);
    ASSERT_EQ(e->view.ndim, int(t.shape.size()));
    for (size_t d = 0; d < t.shape.size(); d++) EXPECT_EQ(e->view.shape[d], t.shape[d]);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(e->view.data) % dtype_size(t.dtype), 0u) << t.name;
    if (e->view.nbytes()) {
      EXPECT_EQ(std::memcmp(e->view.data, t.data, e->view.nbytes()), 0) << t.name;
    }
  }
  EXPECT_EQ(set.find("d.scalar")->view.numel(), 1);
  EXPECT_EQ(set.find("e.empty")->view.numel(), 0);
  EXPECT_EQ(set.total_bytes(), f32.size() * 4 + 26 + 34 + 4 + 0 + 32);
  EXPECT_EQ(set.metadata().at("format"), "pt");

  // Moving the set keeps the views valid (the mapping does not move).
  const void* before = set.find("a.f32")->view.data;
  SafetensorsSet moved = std::move(set);
  EXPECT_EQ(moved.find("a.f32")->view.data, before);
  EXPECT_EQ(static_cast<const float*>(moved.find("a.f32")->view.data)[104], 54.0f);
}

TEST_F(SafetensorsTest, HeaderOrderIsKept) {
  // Not sorted, nested keys that could be mistaken for top-level ones, a duplicate key (the JSON
  // parser keeps the last value; the name keeps its first place).
  const std::string header =
      R"({"z":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
      R"("__metadata__":{"shape":"x"},)"
      R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},)"
      R"("m":{"dtype":"U8","shape":[2],"data_offsets":[3,5]},)"
      R"("z":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}})";
  const std::string bytes = raw_file(header, 5);
  const StHeader h = parse_safetensors(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), "buf");
  ASSERT_EQ(h.tensors.size(), 3u);
  EXPECT_EQ(h.tensors[0].name, "z");
  EXPECT_EQ(h.tensors[0].begin, 2u);
  EXPECT_EQ(h.tensors[1].name, "a");
  EXPECT_EQ(h.tensors[2].name, "m");
  EXPECT_EQ(h.metadata.at("shape"), "x");
  EXPECT_EQ(h.data_start, 8 + header.size());
}

TEST_F(SafetensorsTest, MisalignedTensorIsCopiedAligned) {
  // A 62-byte header puts the data section at 70, 2 bytes off 4-alignment (the mapping is page-aligned).
  std::string header = R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})";
  header.append(62 - header.size(), ' ');  // 8 + 62 = 70: 70 % 4 == 2
  const std::string file = path("odd.safetensors");
  std::string bytes = raw_file(header, 0);
  const float vals[3] = {1.5f, -2.0f, 3.25f};
  bytes.append(reinterpret_cast<const char*>(vals), sizeof vals);
  write_all(file, bytes);
  SafetensorsSet set = SafetensorsSet::open(file);
  const auto* e = set.find("x");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(e->view.data) % 4, 0u);
  EXPECT_EQ(std::memcmp(e->view.data, vals, sizeof vals), 0);
}

TEST_F(SafetensorsTest, ShardedSet) {
  std::vector<float> a(6, 1.0f), b(4, 2.0f), c(10, 3.0f), d(2, 4.0f);
  std::vector<uint16_t> e(3, f32_to_bf16(5.0f));
  write_safetensors(path("model-00001-of-00003.safetensors"),
                    {{"model.a", DType::F32, {2, 3}, a.data()}, {"model.b", DType::F32, {4}, b.data()}},
                    {{"format", "pt"}});
  write_safetensors(path("model-00002-of-00003.safetensors"), {{"model.c", DType::F32, {10}, c.data()}});
  write_safetensors(path("model-00003-of-00003.safetensors"),
                    {{"model.d", DType::F32, {1, 2}, d.data()}, {"model.e", DType::BF16, {3}, e.data()}});
  write_all(path(SafetensorsSet::kIndexName), R"({
    "metadata": {"total_size": 94},
    "weight_map": {
      "model.a": "model-00001-of-00003.safetensors",
      "model.b": "model-00001-of-00003.safetensors",
      "model.c": "model-00002-of-00003.safetensors",
      "model.d": "model-00003-of-00003.safetensors",
      "model.e": "model-00003-of-00003.safetensors"
    }})");

  ASSERT_TRUE(SafetensorsSet::has_weights(dir_.string()));
  // The directory, the index, and the directory with every shard read into memory (--no-mmap).
  const std::vector<std::pair<std::string, FileAccess>> opens = {
      {dir_.string(), FileAccess::Map}, {path(SafetensorsSet::kIndexName), FileAccess::Map}, {dir_.string(), FileAccess::Read}};
  for (const auto& [p, access] : opens) {
    SafetensorsSet set = SafetensorsSet::open(p, access);
    EXPECT_EQ(set.size(), 5u);
    EXPECT_EQ(set.files().size(), 3u);
    EXPECT_EQ(set.names(), (std::vector<std::string>{"model.a", "model.b", "model.c", "model.d", "model.e"}));
    EXPECT_EQ(set.total_bytes(), 94u);
    EXPECT_EQ(set.metadata().at("format"), "pt");  // from the first shard
    const auto* c_entry = set.find("model.c");
    ASSERT_NE(c_entry, nullptr);
    EXPECT_EQ(fs::path(c_entry->file).filename(), "model-00002-of-00003.safetensors");
    EXPECT_EQ(static_cast<const float*>(c_entry->view.data)[9], 3.0f);
    const auto* e_entry = set.find("model.e");
    ASSERT_NE(e_entry, nullptr);
    EXPECT_EQ(e_entry->view.dtype, DType::BF16);
    EXPECT_EQ(bf16_to_f32(static_cast<const uint16_t*>(e_entry->view.data)[2]), 5.0f);
    EXPECT_EQ(fs::path(set.find("model.a")->file).filename(), "model-00001-of-00003.safetensors");
  }
}

TEST_F(SafetensorsTest, DirectoryWithSingleFile) {
  const float x = 1.0f;
  write_safetensors(path("model.safetensors"), {{"x", DType::F32, {1}, &x}});
  EXPECT_TRUE(SafetensorsSet::has_weights(dir_.string()));
  EXPECT_EQ(SafetensorsSet::open(dir_.string()).size(), 1u);
}

TEST_F(SafetensorsTest, WriterRefusesBadInput) {
  const float x = 1.0f;
  const std::string file = path("w.safetensors");
  expect_error([&] { write_safetensors(file, {{"x", DType::F32, {1}, &x}, {"x", DType::F32, {1}, &x}}); },
               {file, "given twice"});
  expect_error([&] { write_safetensors(file, {{"__metadata__", DType::F32, {1}, &x}}); }, {file, "reserved"});
  expect_error([&] { write_safetensors(file, {{"x", DType::F32, {-1}, &x}}); }, {file, "bad shape"});
  expect_error([&] { write_safetensors(file, {{"x", DType::F32, {2}, nullptr}}); }, {file, "no data"});
  expect_error([&] { write_safetensors(file, {{"bad\xff", DType::F32, {1}, &x}}); }, {file, "cannot encode"});
  expect_error([&] { write_safetensors(path("no/such/dir/w.safetensors"), {}); }, {"cannot create"});
}

// ---- broken files -------------------------------------------------------------------------------

TEST_F(SafetensorsTest, TruncatedInDataSection) {
  std::vector<float> v(64, 1.0f);
  const std::string file = path("cut.safetensors");
  write_safetensors(file, {{"a", DType::F32, {32}, v.data()}, {"b", DType::F32, {32}, v.data()}});
  fs::resize_file(file, fs::file_size(file) - 10);
  expect_error([&] { SafetensorsSet::open(file); }, {file, "tensor 'b'", "beyond the data section", "truncated"});
}

TEST_F(SafetensorsTest, FiveByteFile) {
  const std::string file = path("five.safetensors");
  write_all(file, "abcde");
  expect_error([&] { SafetensorsSet::open(file); }, {file, "only 5 bytes"});
}

TEST_F(SafetensorsTest, EmptyFile) {
  const std::string file = path("empty.safetensors");
  write_all(file, "");
  expect_error([&] { SafetensorsSet::open(file); }, {file, "only 0 bytes"});
}

TEST_F(SafetensorsTest, HeaderLengthBeyondFileEnd) {
  const std::string file = path("long.safetensors");
  std::string bytes = raw_file("{}", 0);
  bytes[0] = char(0xff);  // claims 255 header bytes, 2 present
  write_all(file, bytes);
  expect_error([&] { SafetensorsSet::open(file); }, {file, "header length 255 goes beyond the end of the file"});
  bytes = raw_file("{}", 0);
  std::memset(bytes.data(), 0xff, 8);  // 2^64 - 1
  write_all(file, bytes);
  expect_error([&] { SafetensorsSet::open(file); }, {file, "goes beyond the end of the file"});
}

TEST_F(SafetensorsTest, MissingFile) {
  expect_error([&] { SafetensorsSet::open(path("nope.safetensors")); }, {path("nope.safetensors"), "cannot open"});
}

// Header-level defects: each case writes `header` + `data` bytes and expects `message`.
struct BadHeader {
  const char* name;
  std::string header;
  size_t data_size;
  std::string message;
};

void PrintTo(const BadHeader& c, std::ostream* os) { *os << c.name; }

class SafetensorsBadHeaderTest : public SafetensorsTest, public ::testing::WithParamInterface<BadHeader> {};

TEST_P(SafetensorsBadHeaderTest, Rejected) {
  const BadHeader& c = GetParam();
  const std::string file = path(std::string(c.name) + ".safetensors");
  write_all(file, raw_file(c.header, c.data_size));
  expect_error([&] { SafetensorsSet::open(file); }, {file, c.message});
  // The pure parser says the same.
  const std::string bytes = raw_file(c.header, c.data_size);
  expect_error([&] { parse_safetensors(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), "buf"); },
               {"buf: ", c.message});
}

#define T(dtype, shape, offsets) R"({"t":{"dtype":)" dtype R"(,"shape":)" shape R"(,"data_offsets":)" offsets "}}"

const BadHeader kBadHeaders[] = {
    {"InvalidJson", R"({"t": {"dtype": "F32",)", 0, "not valid JSON"},
    {"NotAnObject", "[1, 2, 3]", 0, "not a JSON object (got array)"},
    {"EntryNotObject", R"({"t": [1, 2]})", 0, "tensor 't': header entry is not a JSON object"},
    {"MissingDtype", R"({"t":{"shape":[1],"data_offsets":[0,4]}})", 4, "missing \"dtype\""},
    {"DtypeNotString", T("7", "[1]", "[0,4]"), 4, "\"dtype\" is not a string"},
    {"UnknownDtype", T("\"Q9_X\"", "[1]", "[0,4]"), 4, "unknown dtype \"Q9_X\" (supported: F32, F16, BF16"},
    {"MissingShape", R"({"t":{"dtype":"F32","data_offsets":[0,4]}})", 4, "missing \"shape\""},
    {"ShapeNotArray", T("\"F32\"", "4", "[0,4]"), 4, "\"shape\" is not an array"},
    {"ShapeNotIntegers", T("\"F32\"", "[2.5]", "[0,4]"), 4, "\"shape\" must hold integers"},
    {"NegativeDim", T("\"F32\"", "[3, -2]", "[0,4]"), 4, "negative dimension -2"},
    {"HugeDimsOverflow", T("\"F32\"", "[4294967296, 4294967296]", "[0,4]"), 4, "overflows"},
    {"DimBeyondInt64", T("\"F32\"", "[18446744073709551615]", "[0,4]"), 4, "overflows int64"},
    {"BytesOverflow", T("\"F64\"", "[2305843009213693952]", "[0,4]"), 4, "overflows"},
    {"MissingOffsets", R"({"t":{"dtype":"F32","shape":[1]}})", 4, "missing \"data_offsets\""},
    {"OffsetsNotPair", T("\"F32\"", "[1]", "[0]"), 4, "\"data_offsets\" must be [begin, end]"},
    {"OffsetsNegative", T("\"F32\"", "[1]", "[-4,0]"), 4, "\"data_offsets\" must be [begin, end]"},
    {"ShapeBytesMismatch", T("\"F32\"", "[2, 3]", "[0,20]"), 24, "needs 24 bytes but data_offsets [0, 20] span 20"},
    {"OffsetsBeyondData", T("\"F32\"", "[2]", "[8,16]"), 12, "data_offsets [8, 16] go beyond the data section (12 bytes)"},
    {"OffsetsHuge", T("\"U8\"", "[1]", "[18446744073709551614,18446744073709551615]"), 4, "beyond the data section"},
    {"BeginAfterEnd", T("\"F32\"", "[1]", "[8,4]"), 8, "begin > end"},
    {"Overlap",
     R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
     20, "tensors 'a' [0, 16) and 'b' [12, 20) overlap"},
    {"OverlapInside",
     R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},"b":{"dtype":"U8","shape":[16],"data_offsets":[0,16]}})",
     16, "overlap"},
    {"MetadataNotObject", R"({"__metadata__": "x"})", 0, "\"__metadata__\" is not a JSON object"},
    {"MetadataNotString", R"({"__metadata__": {"n": 3}})", 0, "\"__metadata__\" value of 'n' is not a string"},
};
#undef T

INSTANTIATE_TEST_SUITE_P(Broken, SafetensorsBadHeaderTest,
                         ::testing::ValuesIn(kBadHeaders),
                         [](const ::testing::TestParamInfo<BadHeader>& p) { return std::string(p.param.name); });

TEST_F(SafetensorsTest, MoreThanFourDims) {
  const std::string file = path("five_dims.safetensors");
  const std::string bytes = raw_file(R"({"t":{"dtype":"U8","shape":[1,1,1,1,2],"data_offsets":[0,2]}})", 2);
  write_all(file, bytes);
  EXPECT_EQ(parse_safetensors(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), "buf")
                .tensors[0].shape.size(),
            5u);
  expect_error([&] { SafetensorsSet::open(file); }, {file, "tensor 't' has 5 dims; at most 4"});
}

TEST_F(SafetensorsTest, GapsAndTrailingBytesAreAllowed) {
  const std::string file = path("gap.safetensors");
  write_all(file, raw_file(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})", 10));
  SafetensorsSet set = SafetensorsSet::open(file);
  EXPECT_EQ(static_cast<const unsigned char*>(set.find("a")->view.data)[1], 5);
}

// ---- broken indexes -----------------------------------------------------------------------------

class SafetensorsIndexTest : public SafetensorsTest {
 protected:
  void SetUp() override {
    SafetensorsTest::SetUp();
    write_safetensors(path("s1.safetensors"), {{"a", DType::F32, {1}, &one_}, {"b", DType::F32, {1}, &one_}});
    write_safetensors(path("s2.safetensors"), {{"c", DType::F32, {1}, &one_}});
  }
  std::string write_index(const std::string& weight_map) {
    const std::string file = path(SafetensorsSet::kIndexName);
    write_all(file, R"({"metadata": {}, "weight_map": )" + weight_map + "}");
    return file;
  }
  float one_ = 1.0f;
};

TEST_F(SafetensorsIndexTest, Valid) {
  write_index(R"({"a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors"})");
  EXPECT_EQ(SafetensorsSet::open(dir_.string()).size(), 3u);
}

TEST_F(SafetensorsIndexTest, MissingShard) {
  const std::string idx =
      write_index(R"({"a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors", "d": "s3.safetensors"})");
  expect_error([&] { SafetensorsSet::open(dir_.string()); }, {idx, "shard 's3.safetensors'", "missing"});
}

TEST_F(SafetensorsIndexTest, TensorMissingFromShard) {
  const std::string idx =
      write_index(R"({"a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors", "z": "s2.safetensors"})");
  expect_error([&] { SafetensorsSet::open(dir_.string()); },
               {idx, "tensor 'z' is listed in shard 's2.safetensors', which does not contain it"});
}

TEST_F(SafetensorsIndexTest, TensorInAnotherShard) {
  const std::string idx = write_index(R"({"a": "s1.safetensors", "b": "s2.safetensors", "c": "s2.safetensors"})");
  expect_error([&] { SafetensorsSet::open(dir_.string()); },
               {path("s1.safetensors"), "tensor 'b'", idx, "places it in 's2.safetensors'"});
}

TEST_F(SafetensorsIndexTest, TensorNotListed) {
  const std::string idx = write_index(R"({"a": "s1.safetensors", "c": "s2.safetensors"})");
  expect_error([&] { SafetensorsSet::open(dir_.string()); },
               {path("s1.safetensors"), "tensor 'b' is not listed in", idx});
}

TEST_F(SafetensorsIndexTest, PathEscapingShardName) {
  for (const char* bad : {"../s1.safetensors", "sub/s1.safetensors", "/etc/passwd", "..", ""}) {
    const std::string idx = write_index(R"({"a": ")" + std::string(bad) + R"("})");
    expect_error([&] { SafetensorsSet::open(dir_.string()); }, {idx, "tensor 'a' names shard", "not a plain file name"});
  }
}

TEST_F(SafetensorsIndexTest, BadIndexJson) {
  std::string idx = path(SafetensorsSet::kIndexName);
  write_all(idx, "{\"weight_map\": ");
  expect_error([&] { SafetensorsSet::open(dir_.string()); }, {idx, "index is not valid JSON"});
  write_all(idx, "[]");
  expect_error([&] { SafetensorsSet::open(dir_.string()); }, {idx, "index is not a JSON object"});
  write_all(idx, R"({"metadata": {}})");
  expect_error([&] { SafetensorsSet::open(dir_.string()); }, {idx, "no \"weight_map\""});
  write_index("[]");
  expect_error([&] { SafetensorsSet::open(dir_.string()); }, {idx, "\"weight_map\" is not a JSON object"});
  write_index(R"({"a": 1})");
  expect_error([&] { SafetensorsSet::open(dir_.string()); }, {idx, "value of 'a' is not a string"});
  write_index("{}");
  expect_error([&] { SafetensorsSet::open(dir_.string()); }, {idx, "\"weight_map\" is empty"});
}

TEST_F(SafetensorsTest, DirectoryWithoutWeights) {
  EXPECT_FALSE(SafetensorsSet::has_weights(dir_.string()));
  write_all(path("config.json"), "{}");
  expect_error([&] { SafetensorsSet::open(dir_.string()); },
               {dir_.string(), "no weights", "model.safetensors.index.json", "model.safetensors"});
}

}  // namespace
}  // namespace kl
