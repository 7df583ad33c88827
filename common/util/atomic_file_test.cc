#include "common/util/atomic_file.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>

#include <gtest/gtest.h>

namespace vios::util {
namespace {

class AtomicFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vios-atomic-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(AtomicFileTest, WritesReplacesAndReads) {
  std::string error;
  const std::string path = dir_ + "/a/b/state.json";
  ASSERT_TRUE(WriteFileAtomically(path, "one", 0600, &error)) << error;
  ASSERT_TRUE(WriteFileAtomically(path, "two, longer", 0600, &error)) << error;
  auto text = ReadFile(path, &error);
  ASSERT_TRUE(text.has_value()) << error;
  EXPECT_EQ(*text, "two, longer");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST_F(AtomicFileTest, MissingFileIsNotAnError) {
  std::string error = "stale";
  EXPECT_FALSE(ReadFile(dir_ + "/nope", &error).has_value());
  EXPECT_EQ(error, "");
}

TEST_F(AtomicFileTest, UnwritableDirectoryNamesThePath) {
  std::string error;
  const std::string file = dir_ + "/file";
  ASSERT_TRUE(WriteFileAtomically(file, "x", 0600, &error));
  // A regular file where a directory should be.
  EXPECT_FALSE(WriteFileAtomically(file + "/child", "x", 0600, &error));
  EXPECT_NE(error.find(file), std::string::npos) << error;
}

}  // namespace
}  // namespace vios::util
