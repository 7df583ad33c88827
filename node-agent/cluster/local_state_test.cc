// Tests of LocalStateStore: round trip, corruption detection, crash mid-write.
#include "node-agent/cluster/local_state.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace vios::agent::cluster {
namespace {

namespace fs = std::filesystem;

class LocalStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vios-state-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  static LocalState Sample() {
    LocalState s;
    s.cluster = {{"apiVersion", "vios.dev/v1alpha1"},
                 {"kind", "VIOSCluster"},
                 {"metadata", {{"name", "local"}, {"namespace", "vios"}}},
                 {"spec", {{"pools", {{{"name", "default"}}}}}}};
    s.members.push_back({{"metadata", {{"name", "node-b"}}}, {"spec", {{"cluster", "local"}}}});
    s.volumes.push_back({{"metadata", {{"name", "pvc-1"}}},
                         {"spec", {{"extents", {{{"backend", "file0"}, {"offset", 0}}}}}}});
    s.reservations["pvc-1"] = {{"generation", 7}, {"holder", "iqn.x"}};
    return s;
  }

  std::string ReadFile(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream b;
    b << in.rdbuf();
    return b.str();
  }
  void WriteFile(const fs::path& p, const std::string& data) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << data;
  }
  int CountCorruptFiles() {
    int n = 0;
    for (const auto& e : fs::directory_iterator(dir_)) {
      n += e.path().filename().string().find(".corrupt-") != std::string::npos ? 1 : 0;
    }
    return n;
  }

  fs::path dir_;
};

TEST_F(LocalStateTest, MissingFileIsAFirstStart) {
  LocalStateStore store(dir_ / "nested");
  auto r = store.Load();
  EXPECT_EQ(r.outcome, LocalStateStore::Outcome::kMissing);
}

TEST_F(LocalStateTest, RoundTripKeepsEverything) {
  LocalStateStore store(dir_ / "nested");
  LocalState s = Sample();
  store.Save(s);
  auto r = store.Load();
  ASSERT_EQ(r.outcome, LocalStateStore::Outcome::kLoaded) << r.error;
  EXPECT_EQ(r.state.cluster, s.cluster);
  EXPECT_EQ(r.state.members, s.members);
  EXPECT_EQ(r.state.volumes, s.volumes);
  EXPECT_EQ(r.state.reservations, s.reservations);
  EXPECT_FALSE(r.state.saved_at.empty());
  // A second save replaces the first.
  s.reservations["pvc-1"]["generation"] = 8;
  store.Save(s);
  r = store.Load();
  ASSERT_EQ(r.outcome, LocalStateStore::Outcome::kLoaded);
  EXPECT_EQ(r.state.reservations["pvc-1"]["generation"], 8);
}

TEST_F(LocalStateTest, FlippedPayloadByteIsDetectedAndMovedAside) {
  LocalStateStore store(dir_);
  store.Save(Sample());
  std::string bytes = ReadFile(store.path());
  const size_t pos = bytes.find("node-b");
  ASSERT_NE(pos, std::string::npos);
  bytes[pos] = 'X';  // still valid JSON: only the checksum can tell
  WriteFile(store.path(), bytes);
  auto r = store.Load();
  ASSERT_EQ(r.outcome, LocalStateStore::Outcome::kCorrupt);
  EXPECT_NE(r.error.find("checksum mismatch"), std::string::npos) << r.error;
  EXPECT_FALSE(fs::exists(store.path()));
  EXPECT_TRUE(fs::exists(r.moved_to));
  EXPECT_EQ(CountCorruptFiles(), 1);
  // The next start is a clean first start.
  EXPECT_EQ(store.Load().outcome, LocalStateStore::Outcome::kMissing);
}

TEST_F(LocalStateTest, TruncatedFileIsDetected) {
  LocalStateStore store(dir_);
  store.Save(Sample());
  std::string bytes = ReadFile(store.path());
  WriteFile(store.path(), bytes.substr(0, bytes.size() - 10));
  auto r = store.Load();
  ASSERT_EQ(r.outcome, LocalStateStore::Outcome::kCorrupt);
  EXPECT_NE(r.error.find("header says"), std::string::npos) << r.error;
}

TEST_F(LocalStateTest, GarbageAndUnknownVersionAreDetected) {
  LocalStateStore store(dir_);
  WriteFile(store.path(), "\x01\x02 not a state file");
  auto r = store.Load();
  ASSERT_EQ(r.outcome, LocalStateStore::Outcome::kCorrupt);
  EXPECT_NE(r.error.find("header"), std::string::npos) << r.error;

  std::string bytes = LocalStateStore::Encode(Sample());
  const size_t v = bytes.find("\"version\":1");
  ASSERT_NE(v, std::string::npos);
  bytes.replace(v, 11, "\"version\":9");
  WriteFile(store.path(), bytes);
  r = store.Load();
  ASSERT_EQ(r.outcome, LocalStateStore::Outcome::kCorrupt);
  EXPECT_NE(r.error.find("unsupported format version 9"), std::string::npos) << r.error;
}

TEST_F(LocalStateTest, WrongFieldTypeIsDetected) {
  // A payload with a valid checksum but the wrong shape (written by a buggy agent).
  const std::string payload = R"({"members":{"not":"an array"}})";
  nlohmann::json header = {{"format", "vios-agent-state"},
                           {"version", 1},
                           {"length", payload.size()},
                           {"sha256", Sha256Hex(payload)}};
  LocalStateStore store(dir_);
  WriteFile(store.path(), header.dump() + "\n" + payload);
  auto r = store.Load();
  ASSERT_EQ(r.outcome, LocalStateStore::Outcome::kCorrupt);
  EXPECT_NE(r.error.find("members"), std::string::npos) << r.error;
}

TEST_F(LocalStateTest, CrashMidWriteLeavesPreviousCopyIntact) {
  LocalStateStore store(dir_);
  LocalState s = Sample();
  store.Save(s);
  // A crash between write and rename leaves a partial temp file beside the good copy; its
  // writer (the pid in the name; above any pid_max) is gone.
  const fs::path tmp = dir_ / "cluster-state.json.tmp.2147483647";
  const std::string next = LocalStateStore::Encode(LocalState{});
  WriteFile(tmp, next.substr(0, next.size() / 2));
  // A temp file of a live writer (this process) is a write in progress: it stays.
  const fs::path live = dir_ / ("cluster-state.json.tmp." + std::to_string(::getpid()));
  WriteFile(live, next.substr(0, next.size() / 3));
  auto r = store.Load();
  ASSERT_EQ(r.outcome, LocalStateStore::Outcome::kLoaded) << r.error;
  EXPECT_EQ(r.state.members, s.members);
  EXPECT_EQ(r.stale_temps_removed, 1);
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_TRUE(fs::exists(live));
}

TEST_F(LocalStateTest, SaveLeavesNoTempFiles) {
  LocalStateStore store(dir_);
  for (int i = 0; i < 5; ++i) {
    store.Save(Sample());
  }
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST_F(LocalStateTest, SaveIntoUnwritableDirectoryThrowsAndKeepsOldCopy) {
  if (geteuid() == 0) {
    // root ignores directory permissions; use a path under a regular file instead.
    WriteFile(dir_ / "file", "x");
    LocalStateStore store(dir_ / "file" / "sub");
    EXPECT_THROW(store.Save(Sample()), std::system_error);
    return;
  }
  LocalStateStore store(dir_);
  store.Save(Sample());
  fs::permissions(dir_, fs::perms::owner_read | fs::perms::owner_exec);
  EXPECT_THROW(store.Save(LocalState{}), std::system_error);
  fs::permissions(dir_, fs::perms::owner_all);
  EXPECT_EQ(store.Load().state.members, Sample().members);
}

}  // namespace
}  // namespace vios::agent::cluster
