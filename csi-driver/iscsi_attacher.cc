// IscsiAttacher (see iscsi_attacher.h for the command sequence).
#include "csi-driver/iscsi_attacher.h"

#include <filesystem>
#include <thread>
#include <vector>

#include "csi-driver/command.h"

namespace vios::csi {
namespace {

// iscsiadm exit codes (iscsiadm(8)): 15 = session already exists, 21 = no records / objects
// found; both mean "already in the state we want" for login resp. logout/delete.
constexpr int kSessionExists = 15;
constexpr int kNoObjectsFound = 21;

bool Run(const std::vector<std::string>& argv, std::string* error, int also_ok = 0) {
  CommandResult r = RunCommand(argv);
  if (r.ok() || (also_ok != 0 && r.exit_code == also_ok)) return true;
  *error = Describe(argv, r);
  return false;
}

std::vector<std::string> Node(const IscsiTarget& t) {
  return {"iscsiadm", "-m", "node", "-T", t.target_iqn, "-p", t.portal, "-I", t.iface};
}

std::vector<std::string> With(std::vector<std::string> base,
                              std::initializer_list<std::string> more) {
  base.insert(base.end(), more);
  return base;
}

}  // namespace

std::string IscsiAttacher::ByPathLink(const IscsiTarget& t) const {
  return by_path_dir_ + "/ip-" + t.portal + "-iscsi-" + t.target_iqn + "-lun-" +
         std::to_string(t.lun);
}

std::string IscsiAttacher::Attach(const IscsiTarget& t, std::string* error) const {
  // iface "new" fails when it exists; the update below is what must succeed.
  RunCommand({"iscsiadm", "-m", "iface", "-I", t.iface, "-o", "new"});
  if (!Run({"iscsiadm", "-m", "iface", "-I", t.iface, "-o", "update", "-n", "iface.initiatorname",
            "-v", t.initiator_name},
           error)) {
    return "";
  }
  if (!Run({"iscsiadm", "-m", "discovery", "-t", "sendtargets", "-p", t.portal, "-I", t.iface},
           error)) {
    return "";
  }
  auto set = [&](const std::string& key, const std::string& value) {
    return Run(With(Node(t), {"-o", "update", "-n", key, "-v", value}), error);
  };
  if (!t.chap_user.empty()) {
    if (!set("node.session.auth.authmethod", "CHAP") ||
        !set("node.session.auth.username", t.chap_user) ||
        !set("node.session.auth.password", t.chap_secret)) {
      return "";
    }
    if (!t.mutual_user.empty() && (!set("node.session.auth.username_in", t.mutual_user) ||
                                   !set("node.session.auth.password_in", t.mutual_secret))) {
      return "";
    }
  }
  if (!Run(With(Node(t), {"--login"}), error, kSessionExists)) return "";
  const std::string link = ByPathLink(t);
  auto deadline = std::chrono::steady_clock::now() + device_timeout_;
  while (!std::filesystem::exists(link)) {
    if (std::chrono::steady_clock::now() > deadline) {
      *error = "logged in to " + t.target_iqn + " but " + link + " did not appear";
      std::string ignored;
      Detach(t, &ignored);
      return "";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::error_code ec;
  auto resolved = std::filesystem::canonical(link, ec);
  return ec ? link : resolved.string();
}

bool IscsiAttacher::Detach(const IscsiTarget& t, std::string* error) const {
  if (!Run(With(Node(t), {"--logout"}), error, kNoObjectsFound)) return false;
  if (!Run(With(Node(t), {"-o", "delete"}), error, kNoObjectsFound)) return false;
  return Run({"iscsiadm", "-m", "iface", "-I", t.iface, "-o", "delete"}, error, kNoObjectsFound);
}

}  // namespace vios::csi
