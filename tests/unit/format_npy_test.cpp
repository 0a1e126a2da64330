// format/npy: the reference goldens, write -> read round trips (byte-identical to numpy's own
// output), and malformed files made here in a temp dir.
#include "format/npy.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "core/error.h"

namespace fs = std::filesystem;

namespace kl {
namespace {

const std::string kGolden = std::string(KL_TEST_DATA) + "/tiny-a/golden";

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

// A version 1.0 file with `header` verbatim (no padding) and `data`.
std::string npy_v1(const std::string& header, const std::string& data) {
  std::string out = "\x93NUMPY\x01";
  out += '\0';
  out += char(header.size() & 0xff);
  out += char(header.size() >> 8);
  return out + header + data;
}

void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no kl::Error thrown; expected one containing '" << parts.front() << "'";
  } catch (const Error& e) {
    for (const std::string& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << "message: " << e.what() << "\nmissing: " << p;
  }
}

class NpyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("kl_format_npy_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes `bytes` to a file, reads it back, expects a kl::Error naming the file and `message`.
  void expect_bad(const std::string& name, const std::string& bytes, const std::string& message) {
    const std::string file = path(name + ".npy");
    write_all(file, bytes);
    expect_error([&] { read_npy(file); }, {file, message});
  }

  fs::path dir_;
};

TEST_F(NpyTest, GoldenLogits) {
  NpyArray a = read_npy(kGolden + "/logits_7.npy");
  EXPECT_EQ(a.dtype, DType::F32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{7, 512}));
  EXPECT_EQ(a.numel(), 7 * 512);
  ASSERT_EQ(a.data.size(), 7u * 512 * 4);
  std::vector<float> v = a.as_f32();
  ASSERT_EQ(v.size(), 7u * 512);
  // First values, as read by Python's struct module from the file.
  EXPECT_FLOAT_EQ(v[0], -0.2300814390182495f);
  EXPECT_FLOAT_EQ(v[1], 1.9627556800842285f);
  for (float x : v) ASSERT_TRUE(std::isfinite(x));
}

TEST_F(NpyTest, GoldenTokensAndHidden) {
  NpyArray t = read_npy(kGolden + "/tokens_7.npy");
  EXPECT_EQ(t.dtype, DType::I32);
  EXPECT_EQ(t.shape, (std::vector<int64_t>{7}));
  EXPECT_EQ(t.as_i64(), (std::vector<int64_t>{370, 329, 284, 321, 272, 134, 92}));
  EXPECT_EQ(t.as_f32()[0], 370.0f);

  NpyArray h = read_npy(kGolden + "/hidden_7.npy");
  EXPECT_EQ(h.dtype, DType::F32);
  EXPECT_EQ(h.shape, (std::vector<int64_t>{8, 7, 128}));
  expect_error([&] { h.as_i64(); }, {"cannot read F32 data as integers"});

  NpyArray r = read_npy(kGolden + "/router_idx_65.npy");
  EXPECT_EQ(r.shape, (std::vector<int64_t>{5, 65, 2}));
  for (int64_t e : r.as_i64()) {
    ASSERT_GE(e, 0);
    ASSERT_LT(e, 1024);
  }
}

// Our writer produces numpy's bytes exactly: rewrite goldens and compare whole files.
TEST_F(NpyTest, WriterMatchesNumpyBytes) {
  for (const char* name : {"logits_7.npy", "tokens_7.npy", "hidden_1.npy", "router_margin_65.npy"}) {
    const std::string golden = kGolden + "/" + name;
    NpyArray a = read_npy(golden);
    const std::string out = path(name);
    write_npy(out, a.dtype, a.shape, a.data.data());
    EXPECT_EQ(read_all(out), read_all(golden)) << name;
  }
}

TEST_F(NpyTest, RoundTrip) {
  const double f64[3] = {1.0 / 3, -2.5, 1e300};
  const int64_t i64[5] = {0, -1, int64_t(1) << 50, 7, -9};
  const uint16_t f16[2] = {f32_to_f16(1.5f), f32_to_f16(-0.25f)};
  const int16_t i16[3] = {-300, 0, 300};
  const int8_t i8[2] = {-128, 127};
  const unsigned char u8[4] = {0, 1, 200, 255};
  const unsigned char b1[3] = {1, 0, 1};
  const float scalar = 3.5f;
  struct Case {
    DType dtype;
    std::vector<int64_t> shape;
    const void* data;
  };
  const Case cases[] = {
      {DType::F64, {3}, f64},         {DType::I64, {5, 1}, i64}, {DType::F16, {1, 1, 2}, f16},
      {DType::I16, {3}, i16},         {DType::I8, {2}, i8},      {DType::U8, {2, 2}, u8},
      {DType::BOOL, {3}, b1},         {DType::F32, {}, &scalar}, {DType::F32, {0, 5}, nullptr},
  };
  int k = 0;
  for (const Case& c : cases) {
    const std::string file = path("rt" + std::to_string(k++) + ".npy");
    write_npy(file, c.dtype, c.shape, c.data);
    const std::string bytes = read_all(file);
    const size_t header_len = size_t(uint8_t(bytes[8])) | size_t(uint8_t(bytes[9])) << 8;
    EXPECT_EQ((10 + header_len) % 64, 0u) << file;
    EXPECT_EQ(bytes[10 + header_len - 1], '\n');
    NpyArray a = read_npy(file);
    EXPECT_EQ(a.dtype, c.dtype) << file;
    EXPECT_EQ(a.shape, c.shape) << file;
    ASSERT_EQ(a.data.size(), size_t(a.numel()) * dtype_size(c.dtype)) << file;
    if (!a.data.empty()) {
      EXPECT_EQ(std::memcmp(a.data.data(), c.data, a.data.size()), 0) << file;
    }
  }
  EXPECT_EQ(read_npy(path("rt0.npy")).as_f32()[1], -2.5f);
  EXPECT_EQ(read_npy(path("rt1.npy")).as_i64()[2], int64_t(1) << 50);
  EXPECT_EQ(read_npy(path("rt2.npy")).as_f32(), (std::vector<float>{1.5f, -0.25f}));
  EXPECT_EQ(read_npy(path("rt3.npy")).as_i64(), (std::vector<int64_t>{-300, 0, 300}));
  EXPECT_EQ(read_npy(path("rt4.npy")).as_i64(), (std::vector<int64_t>{-128, 127}));
  EXPECT_EQ(read_npy(path("rt5.npy")).as_i64()[3], 255);
  EXPECT_EQ(read_npy(path("rt6.npy")).as_f32(), (std::vector<float>{1, 0, 1}));
  EXPECT_EQ(read_npy(path("rt7.npy")).numel(), 1);
  EXPECT_EQ(read_npy(path("rt8.npy")).numel(), 0);
  EXPECT_NE(read_all(path("rt7.npy")).find("'shape': ()"), std::string::npos);
  EXPECT_NE(read_all(path("rt0.npy")).find("'shape': (3,)"), std::string::npos);
}

TEST_F(NpyTest, LargeHeaderUsesVersion2) {
  std::vector<int64_t> shape(25000, 1);  // "1, " x 25000: a header longer than 65535 bytes
  const float x = 2.0f;
  write_npy(path("v2.npy"), DType::F32, shape, &x);
  const std::string bytes = read_all(path("v2.npy"));
  EXPECT_EQ(bytes[6], 2);
  const size_t header_len = size_t(uint8_t(bytes[8])) | size_t(uint8_t(bytes[9])) << 8 |
                            size_t(uint8_t(bytes[10])) << 16 | size_t(uint8_t(bytes[11])) << 24;
  EXPECT_GT(header_len, 65535u);
  EXPECT_EQ((12 + header_len) % 64, 0u);
  NpyArray a = read_npy(path("v2.npy"));
  EXPECT_EQ(a.shape.size(), 25000u);
  EXPECT_EQ(a.as_f32(), std::vector<float>{2.0f});
}

TEST_F(NpyTest, AcceptsOtherSpellings) {
  // Python 2 longs, double quotes, keys in another order, no trailing comma, version 3.0.
  const std::string data(12, '\0');
  write_all(path("py2.npy"), npy_v1("{\"shape\": (3L,), \"fortran_order\": False, \"descr\": \"<i4\"}\n", data));
  EXPECT_EQ(read_npy(path("py2.npy")).shape, std::vector<int64_t>{3});
  std::string v3 = "\x93NUMPY\x03";
  const std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }\n";
  v3 += '\0';
  v3 += char(header.size());
  v3 += std::string(3, '\0');
  write_all(path("v3.npy"), v3 + header + data);
  EXPECT_EQ(read_npy(path("v3.npy")).dtype, DType::F32);
}

TEST_F(NpyTest, WriterRefusesBadInput) {
  const uint16_t x = 0;
  expect_error([&] { write_npy(path("bf16.npy"), DType::BF16, {1}, &x); }, {"bf16.npy", "BF16 has no .npy descr"});
  expect_error([&] { write_npy(path("neg.npy"), DType::U8, {-1}, &x); }, {"neg.npy", "bad shape"});
  expect_error([&] { write_npy(path("null.npy"), DType::U8, {2}, nullptr); }, {"null.npy", "no data"});
  expect_error([&] { write_npy(path("no/dir/x.npy"), DType::U8, {1}, &x); }, {"cannot create"});
}

// ---- malformed files ----------------------------------------------------------------------------

const std::string kF32x3 = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";

TEST_F(NpyTest, MissingFile) { expect_error([&] { read_npy(path("nope.npy")); }, {"nope.npy", "cannot open"}); }
TEST_F(NpyTest, EmptyFile) { expect_bad("empty", "", "too short"); }
TEST_F(NpyTest, BadMagic) { expect_bad("magic", std::string("\x93NUMPZ\x01\x00\x00\x00", 10), "bad magic"); }
TEST_F(NpyTest, UnsupportedVersion) {
  std::string b = npy_v1(kF32x3, std::string(12, '\0'));
  b[6] = 4;
  expect_bad("version", b, "unsupported .npy format version 4.0");
}
TEST_F(NpyTest, HeaderLengthBeyondFile) {
  expect_bad("hlen", npy_v1(kF32x3, "").substr(0, 30), "header of 57 bytes but only 20 bytes follow");
}
TEST_F(NpyTest, TruncatedData) {
  expect_bad("trunc", npy_v1(kF32x3, std::string(10, '\0')), "needs 12 bytes of data but only 10 are present");
}
TEST_F(NpyTest, TrailingBytes) {
  expect_bad("trail", npy_v1(kF32x3, std::string(13, '\0')), "1 unexpected bytes after the array data");
}
TEST_F(NpyTest, FortranOrder) {
  expect_bad("fortran", npy_v1("{'descr': '<f4', 'fortran_order': True, 'shape': (3,), }", std::string(12, '\0')),
             "fortran_order arrays are not supported");
}
TEST_F(NpyTest, BigEndian) {
  expect_bad("be", npy_v1("{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }", std::string(12, '\0')),
             "big-endian descr '>f4'");
}
TEST_F(NpyTest, UnknownDescr) {
  expect_bad("c8", npy_v1("{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", std::string(24, '\0')),
             "unsupported descr '<c8' (supported: <f4, <f8, <f2, <i8, <i4, <i2, |i1, |u1, |b1)");
}
TEST_F(NpyTest, StructuredDescr) {
  expect_bad("rec", npy_v1("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }", ""),
             "structured dtypes");
}
TEST_F(NpyTest, MalformedHeaders) {
  const std::pair<std::string, std::string> cases[] = {
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), ", "expected a quoted string"},
      {"{'descr': '<f4', 'fortran_order': False}", "missing 'shape'"},
      {"{'descr': '<f4', 'shape': (3,)}", "missing 'fortran_order'"},
      {"{'fortran_order': False, 'shape': (3,)}", "missing 'descr'"},
      {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3,)}", "duplicate key 'descr'"},
      {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (3,)}", "expected True or False"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, -1)}", "negative dimension"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (3; 1)}", "expected ',' or ')'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", "overflows int64"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}", "overflows"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}", "unexpected key 'x'"},
      {"{'descr': '<f4, 'fortran_order': False, 'shape': (3,)}", "expected ',' or '}'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,)} junk", "unexpected text after the header"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,)", "expected ',' or '}'"},
      {"'descr'", "expected '{'"},
      {"{'descr': 'a\\'b'}", "escapes in strings"},
      {"{'descr': '<f4", "unterminated string"},
  };
  int k = 0;
  for (const auto& [header, message] : cases) {
    SCOPED_TRACE(header);
    expect_bad("bad" + std::to_string(k++), npy_v1(header, std::string(12, '\0')), message);
  }
}

}  // namespace
}  // namespace kl
