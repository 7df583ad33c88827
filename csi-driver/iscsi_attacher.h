// IscsiAttacher: attaches a virtual port through the kernel iSCSI initiator with open-iscsi's
// iscsiadm (DESIGN.md §4 "Attach transports"): one iface per virtual port, so each pod's
// attachment logs in with its own initiator name (the port's ACL admits exactly that name), CHAP
// from the port's secrets (RFC 7143 §12.1.3), then the LUN appears under /dev/disk/by-path.
//
// Command sequence (Attach):
//   iscsiadm -m iface -I <iface> -o new
//   iscsiadm -m iface -I <iface> -o update -n iface.initiatorname -v <initiator IQN>
//   iscsiadm -m discovery -t sendtargets -p <portal> -I <iface>
//   iscsiadm -m node -T <target> -p <portal> -I <iface> -o update -n node.session.auth.* ...
//   iscsiadm -m node -T <target> -p <portal> -I <iface> --login
// Detach: --logout, -m node ... -o delete, -m iface -I <iface> -o delete (each tolerating "not
// found", so a repeated Detach succeeds).
#pragma once

#include <chrono>
#include <string>

namespace vios::csi {

struct IscsiTarget {
  std::string iface;           // iface name (one per virtual port)
  std::string initiator_name;  // IQN the iface logs in with
  std::string target_iqn;
  std::string portal;  // host:port
  unsigned lun = 0;
  std::string chap_user;  // empty: no CHAP
  std::string chap_secret;
  std::string mutual_user;  // empty: one-way CHAP
  std::string mutual_secret;
};

class IscsiAttacher {
 public:
  // by_path_dir is where udev links LUNs (/dev/disk/by-path); tests point it elsewhere.
  explicit IscsiAttacher(std::string by_path_dir = "/dev/disk/by-path",
                         std::chrono::milliseconds device_timeout = std::chrono::seconds(30))
      : by_path_dir_(std::move(by_path_dir)), device_timeout_(device_timeout) {}

  // Attach logs in and returns the device path (resolved /dev/sdX); "" with error otherwise.
  std::string Attach(const IscsiTarget& target, std::string* error) const;
  // Detach logs out and removes the node record and the iface.
  bool Detach(const IscsiTarget& target, std::string* error) const;
  // ByPathLink is the udev link of the target's LUN.
  std::string ByPathLink(const IscsiTarget& target) const;

 private:
  std::string by_path_dir_;
  std::chrono::milliseconds device_timeout_;
};

}  // namespace vios::csi
