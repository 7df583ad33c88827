// The iscsi transport's command sequence, with a recording iscsiadm stand-in first in PATH (the
// only fake: there is no kernel initiator on the build machines; the real thing runs in the
// cluster e2e). The stand-in logs its arguments and, on --login, creates the by-path link udev
// would create.
#include "csi-driver/iscsi_attacher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace vios::csi {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;

class IscsiAttacherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("csi-iscsiadm-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "bin");
    fs::create_directories(dir_ / "by-path");
    log_ = (dir_ / "calls.log").string();
    WriteStandIn("");
    old_path_ = std::getenv("PATH");
    ::setenv("PATH", ((dir_ / "bin").string() + ":" + old_path_).c_str(), 1);
    target_.iface = "vios-vol1";
    target_.initiator_name = "iqn.2026-11.dev.vios.initiator:node-a:vol1";
    target_.target_iqn = "iqn.2026-11.dev.vios:vol1:node-a";
    target_.portal = "127.0.0.1:3260";
    target_.lun = 0;
    target_.chap_user = "pod-a";
    target_.chap_secret = "secret-of-pod-a";
  }
  void TearDown() override {
    ::setenv("PATH", old_path_.c_str(), 1);
    fs::remove_all(dir_);
  }

  // WriteStandIn installs the recording iscsiadm; `extra` is shell run before the defaults
  // (e.g. to fail a given subcommand).
  void WriteStandIn(const std::string& extra) {
    fs::path script = dir_ / "bin" / "iscsiadm";
    std::ofstream out(script);
    out << "#!/bin/sh\n"
        << "echo \"$*\" >> " << log_ << "\n"
        << extra << "\n"
        << "case \"$*\" in *--login*) touch '" << (dir_ / "by-path").string()
        << "/ip-127.0.0.1:3260-iscsi-iqn.2026-11.dev.vios:vol1:node-a-lun-0' ;; esac\n"
        << "exit 0\n";
    out.close();
    fs::permissions(script, fs::perms::owner_all);
  }

  std::vector<std::string> Calls() {
    std::ifstream in(log_);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  fs::path dir_;
  std::string log_;
  std::string old_path_;
  IscsiTarget target_;
};

TEST_F(IscsiAttacherTest, AttachCreatesAnIfacePerPortSetsChapAndLogsIn) {
  IscsiAttacher attacher((dir_ / "by-path").string(), std::chrono::seconds(2));
  std::string error;
  std::string device = attacher.Attach(target_, &error);
  ASSERT_FALSE(device.empty()) << error;
  EXPECT_EQ(device, fs::canonical(attacher.ByPathLink(target_)).string());
  const std::string node =
      "-m node -T iqn.2026-11.dev.vios:vol1:node-a -p 127.0.0.1:3260 -I vios-vol1";
  EXPECT_THAT(Calls(),
              ElementsAre("-m iface -I vios-vol1 -o new",
                          "-m iface -I vios-vol1 -o update -n iface.initiatorname -v "
                          "iqn.2026-11.dev.vios.initiator:node-a:vol1",
                          "-m discovery -t sendtargets -p 127.0.0.1:3260 -I vios-vol1",
                          node + " -o update -n node.session.auth.authmethod -v CHAP",
                          node + " -o update -n node.session.auth.username -v pod-a",
                          node + " -o update -n node.session.auth.password -v secret-of-pod-a",
                          node + " --login"));
}

TEST_F(IscsiAttacherTest, MutualChapSetsTheTargetCredentialsToo) {
  target_.mutual_user = "vios";
  target_.mutual_secret = "secret-of-target";
  IscsiAttacher attacher((dir_ / "by-path").string(), std::chrono::seconds(2));
  std::string error;
  ASSERT_FALSE(attacher.Attach(target_, &error).empty()) << error;
  auto calls = Calls();
  ASSERT_EQ(calls.size(), 9u);
  EXPECT_THAT(calls[6], ::testing::EndsWith("-n node.session.auth.username_in -v vios"));
  EXPECT_THAT(calls[7],
              ::testing::EndsWith("-n node.session.auth.password_in -v secret-of-target"));
}

TEST_F(IscsiAttacherTest, DetachLogsOutDeletesTheNodeAndTheIfaceAndIsIdempotent) {
  IscsiAttacher attacher((dir_ / "by-path").string(), std::chrono::seconds(2));
  std::string error;
  ASSERT_TRUE(attacher.Detach(target_, &error)) << error;
  // A second Detach: iscsiadm answers 21 (no objects found); still success.
  WriteStandIn("exit 21");
  ASSERT_TRUE(attacher.Detach(target_, &error)) << error;
  auto calls = Calls();
  ASSERT_EQ(calls.size(), 6u);
  EXPECT_THAT(calls[0], ::testing::EndsWith("-I vios-vol1 --logout"));
  EXPECT_THAT(calls[1], ::testing::EndsWith("-I vios-vol1 -o delete"));
  EXPECT_EQ(calls[2], "-m iface -I vios-vol1 -o delete");
}

TEST_F(IscsiAttacherTest, FailedDiscoveryIsReportedWithTheCommand) {
  WriteStandIn(
      "case \"$*\" in *discovery*) echo 'iscsiadm: cannot make connection' ; exit 4 ;; esac");
  IscsiAttacher attacher((dir_ / "by-path").string(), std::chrono::seconds(2));
  std::string error;
  EXPECT_TRUE(attacher.Attach(target_, &error).empty());
  EXPECT_THAT(error, ::testing::HasSubstr("discovery"));
  EXPECT_THAT(error, ::testing::HasSubstr("exit 4"));
  EXPECT_THAT(error, ::testing::HasSubstr("cannot make connection"));
  EXPECT_EQ(Calls().size(), 3u);  // nothing after the failed discovery
}

TEST_F(IscsiAttacherTest, MissingDeviceAfterLoginLogsOutAgain) {
  WriteStandIn("case \"$*\" in *--login*) exit 0 ;; esac");  // login "works", no device appears
  IscsiAttacher attacher((dir_ / "by-path").string(), std::chrono::milliseconds(300));
  std::string error;
  EXPECT_TRUE(attacher.Attach(target_, &error).empty());
  EXPECT_THAT(error, ::testing::HasSubstr("did not appear"));
  EXPECT_THAT(Calls().back(), "-m iface -I vios-vol1 -o delete");
}

}  // namespace
}  // namespace vios::csi
