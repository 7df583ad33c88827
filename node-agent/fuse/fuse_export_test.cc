// fuse_export_test: a BlockDevice exported through FUSE behaves as a file, and a kernel block
// device stacked on it (loop, direct I/O) carries a real ext4 filesystem across unmount, detach and
// remount. Needs root, /dev/fuse and loop devices (CI runs as root).
#include "node-agent/fuse/fuse_export.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "node-agent/fuse/test_file_device.h"

namespace vios::fuse {
namespace {

namespace fs = std::filesystem;

// Shell executes a shell command, returning its exit status and combined output.
std::pair<int, std::string> Shell(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) {
    return {-1, "popen failed"};
  }
  char buf[512];
  while (std::fgets(buf, sizeof(buf), p) != nullptr) {
    out += buf;
  }
  int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// Cleanup runs registered undo steps in reverse order, also when an ASSERT ends the test early.
class Cleanup {
 public:
  ~Cleanup() {
    for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) {
      (*it)();
    }
  }
  void Add(std::function<void()> step) { steps_.push_back(std::move(step)); }

 private:
  std::vector<std::function<void()>> steps_;
};

class FuseExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access("/dev/fuse", R_OK | W_OK) != 0) {
      GTEST_SKIP() << "no /dev/fuse";
    }
    char tmpl[] = "/tmp/vios-fuse-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fs::create_directory(dir_ + "/mnt");
  }
  void TearDown() override {
    if (!dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }
  std::string dir_;
};

TEST_F(FuseExportTest, ServesTheVolumeAsOneRegularFile) {
  constexpr uint64_t kSize = 8 << 20;
  testing::TestFileDevice dev(dir_ + "/backing.img", kSize, 512);
  ASSERT_TRUE(dev.ok());
  std::string error;
  backend::IoCounters counters;
  auto fx = FuseExport::Start(&dev, {.mountpoint = dir_ + "/mnt", .counters = &counters}, &error);
  ASSERT_NE(fx, nullptr) << error;
  Cleanup cleanup;
  cleanup.Add([&] { fx->Stop(); });

  struct stat st {};
  ASSERT_EQ(::stat(fx->FilePath().c_str(), &st), 0) << std::strerror(errno);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kSize);
  EXPECT_EQ(std::vector<fs::path>(fs::directory_iterator(dir_ + "/mnt"), {}),
            std::vector<fs::path>{fs::path(fx->FilePath())});
  EXPECT_NE(::access((dir_ + "/mnt/other").c_str(), F_OK), 0);

  int fd = ::open(fx->FilePath().c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  cleanup.Add([fd] { ::close(fd); });
  // Unaligned write, read back through FUSE and straight from the backend's file.
  const std::string msg = "hello, volume";
  ASSERT_EQ(::pwrite(fd, msg.data(), msg.size(), 1000), static_cast<ssize_t>(msg.size()));
  char back[64] = {};
  ASSERT_EQ(::pread(fd, back, msg.size(), 1000), static_cast<ssize_t>(msg.size()));
  EXPECT_EQ(std::string(back, msg.size()), msg);
  ASSERT_EQ(::fsync(fd), 0);
  EXPECT_GE(dev.flushes(), 1u);
  // The requests are counted, as the agent's vios_volume_* metrics show them.
  EXPECT_EQ(counters.writes.load(), 1u);
  EXPECT_EQ(counters.write_bytes.load(), msg.size());
  EXPECT_GE(counters.reads.load(), 1u);
  EXPECT_GE(counters.read_bytes.load(), msg.size());
  EXPECT_GE(counters.others.load(), 1u);  // The fsync.
  EXPECT_EQ(counters.errors.load(), 0u);
  std::ifstream raw(dir_ + "/backing.img", std::ios::binary);
  raw.seekg(1000);
  std::string raw_back(msg.size(), '\0');
  raw.read(raw_back.data(), static_cast<std::streamsize>(raw_back.size()));
  EXPECT_EQ(raw_back, msg);

  // Punching a hole discards whole blocks and zeroes the edges.
  std::vector<char> ones(16384, 1);
  ASSERT_EQ(::pwrite(fd, ones.data(), ones.size(), 65536), 16384);
  ASSERT_EQ(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 65536 + 100, 8192), 0)
      << std::strerror(errno);
  EXPECT_GE(dev.discards(), 1u);
  std::vector<char> got(16384);
  ASSERT_EQ(::pread(fd, got.data(), got.size(), 65536), 16384);
  for (size_t i = 0; i < got.size(); ++i) {
    bool hole = i >= 100 && i < 100 + 8192;
    ASSERT_EQ(got[i], hole ? 0 : 1) << "byte " << i;
  }

  // The volume neither grows nor shrinks; reads past the end are EOF.
  EXPECT_EQ(::pwrite(fd, "x", 1, static_cast<off_t>(kSize)), -1);
  EXPECT_EQ(errno, ENOSPC);
  EXPECT_NE(::ftruncate(fd, 4096), 0);
  EXPECT_EQ(::pread(fd, back, 10, static_cast<off_t>(kSize)), 0);
  EXPECT_EQ(dev.misaligned(), 0u);

  // O_DIRECT works (what a direct-I/O loop device needs).
  int dfd = ::open(fx->FilePath().c_str(), O_RDONLY | O_DIRECT);
  ASSERT_GE(dfd, 0) << std::strerror(errno);
  ::close(dfd);
}

TEST_F(FuseExportTest, LoopDeviceCarriesExt4AcrossRemount) {
  if (Shell("command -v losetup && command -v mkfs.ext4").first != 0) {
    GTEST_SKIP() << "losetup/mkfs.ext4 missing";
  }
  constexpr uint64_t kSize = 96 << 20;
  std::string backing = dir_ + "/backing.img";
  std::string mnt = dir_ + "/fs";
  fs::create_directory(mnt);
  testing::TestFileDevice dev(backing, kSize, 512);
  ASSERT_TRUE(dev.ok());
  std::string error;
  auto fx = FuseExport::Start(&dev, {.mountpoint = dir_ + "/mnt"}, &error);
  ASSERT_NE(fx, nullptr) << error;
  Cleanup cleanup;  // Runs in reverse: umount, detach loop, stop the export.
  cleanup.Add([&] { fx->Stop(); });

  std::string loop;
  auto attach = [&]() -> bool {
    auto [rc, out] = Shell("losetup --find --show --direct-io=on " + fx->FilePath());
    if (rc != 0) {
      ADD_FAILURE() << "losetup: " << out;
      return false;
    }
    loop = out.substr(0, out.find('\n'));
    return true;
  };
  auto detach = [&] {
    if (!loop.empty()) {
      Shell("losetup -d " + loop);
      loop.clear();
    }
  };
  bool mounted = false;
  auto umount = [&] {
    if (mounted) {
      auto [rc, out] = Shell("umount " + mnt);
      EXPECT_EQ(rc, 0) << out;
      mounted = rc != 0;
    }
  };
  cleanup.Add(detach);
  cleanup.Add([&] {
    if (mounted) {
      Shell("umount -l " + mnt);
    }
  });

  ASSERT_TRUE(attach());
  auto [dio_rc, dio] = Shell("cat /sys/block/" + loop.substr(5) + "/loop/dio");
  EXPECT_EQ(dio.substr(0, 1), "1") << "loop device is not using direct I/O: " << dio;
  auto [mkfs_rc, mkfs_out] = Shell("mkfs.ext4 -q -F -E discard " + loop);
  ASSERT_EQ(mkfs_rc, 0) << mkfs_out;
  EXPECT_GE(dev.discards(), 1u) << "mkfs discards should reach the backend as kDiscard";
  auto [mount_rc, mount_out] = Shell("mount -o sync " + loop + " " + mnt);
  ASSERT_EQ(mount_rc, 0) << mount_out;
  mounted = true;

  // Files of various sizes, each fsynced.
  auto content = [](int i) {
    std::string s;
    size_t size = 1000 + static_cast<size_t>(i) * 97 * 1024;
    s.reserve(size);
    for (size_t j = 0; j < size; ++j) {
      s.push_back(static_cast<char>('a' + (j * 31 + static_cast<size_t>(i)) % 26));
    }
    return s;
  };
  uint64_t flushes_before = dev.flushes();
  for (int i = 0; i < 12; ++i) {
    std::string path = mnt + "/file" + std::to_string(i);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0) << path;
    std::string data = content(i);
    ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    ASSERT_EQ(::fsync(fd), 0);
    ::close(fd);
  }
  EXPECT_GT(dev.flushes(), flushes_before) << "fsync must reach the backend as kFlush";

  // Unmount, detach, and check the filesystem straight on the backend's file: the bytes went
  // through FUSE to the BlockDevice, not just into a cache.
  umount();
  ASSERT_FALSE(mounted);
  detach();
  auto [fsck_rc, fsck_out] = Shell("e2fsck -f -n " + backing);
  EXPECT_EQ(fsck_rc, 0) << fsck_out;

  // Attach again, mount, read everything back.
  ASSERT_TRUE(attach());
  auto [remount_rc, remount_out] = Shell("mount " + loop + " " + mnt);
  ASSERT_EQ(remount_rc, 0) << remount_out;
  mounted = true;
  for (int i = 0; i < 12; ++i) {
    std::ifstream in(mnt + "/file" + std::to_string(i), std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(data, content(i)) << "file" << i;
  }
  umount();
  detach();
  EXPECT_EQ(dev.misaligned(), 0u);
}

}  // namespace
}  // namespace vios::fuse
