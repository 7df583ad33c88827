// vios-prtool: one iSCSI session (libiscsi sync API) that runs SCSI reservation commands read from
// stdin, one per line, and prints one JSON object per command on stdout. The e2e suites and the
// benchmark use it to act as a pod's initiator: `sg_persist` needs a kernel initiator, and the
// libiscsi tools Debian ships cannot send PERSISTENT RESERVE OUT.
//
//   vios-prtool --initiator-name IQN [--timeout S] iscsi://HOST:PORT/TARGET/LUN
//   stdin:  register 0 aa | reserve aa we-ro | write 0 | read-full-status | quit
//   stdout: {"cmd":"reserve","status":"GOOD","us":5123} ...
//
// The session stays open across commands: an I_T nexus is the initiator port (name + ISID) and
// the target port, so reconnecting would be another nexus with other registrations.
//
// Commands (keys in hex, TYPE one of we ea we-ro ea-ro we-ar ea-ar or the SPC-4 code):
//   register OLD NEW [aptpl] | register-ignore NEW [aptpl] | reserve KEY TYPE | release KEY TYPE
//   clear KEY | preempt KEY SAKEY TYPE | preempt-abort KEY SAKEY TYPE
//   read-keys | read-reservation | read-full-status | report-capabilities
//   write LBA [BYTE] | read LBA | tur | reserve6 | release6 | quit
//
// Every answer carries "status" (GOOD, RESERVATION_CONFLICT, CHECK_CONDITION with "sense_key",
// "asc", "ascq", or TRANSPORT_ERROR with "error") and "us" (submit to completion). A UNIT
// ATTENTION is what an initiator retries: it is recorded in "unit_attentions" and the command is
// sent again (up to 8 times), as the Linux SCSI midlayer does.
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

using nlohmann::json;

constexpr char kUsage[] =
    "usage: vios-prtool --initiator-name IQN [--timeout SECONDS] iscsi://HOST[:PORT]/TARGET/LUN\n"
    "       commands on stdin, one per line (see the source header); JSON answers on stdout\n";

uint32_t Be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

uint64_t Be64(const unsigned char* p) { return (uint64_t{Be32(p)} << 32) | Be32(p + 4); }

std::string Hex(uint64_t key) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(key));
  return buf;
}

// SPC-4 §6.16.2 table 174 codes; short names as fence_scsi and sg_persist spell them.
int ParseType(const std::string& s) {
  static const std::map<std::string, int> kNames = {{"we", 1},    {"ea", 3},    {"we-ro", 5},
                                                    {"ea-ro", 6}, {"we-ar", 7}, {"ea-ar", 8}};
  auto it = kNames.find(s);
  if (it != kNames.end()) return it->second;
  return static_cast<int>(std::strtol(s.c_str(), nullptr, 0));
}

uint64_t ParseKey(const std::string& s) { return std::strtoull(s.c_str(), nullptr, 16); }

// An iSCSI TransportID (SPC-4 §7.6.4.6): format 00b is the name, 01b the name ",i,0x" ISID.
std::string TransportIdName(const unsigned char* p, size_t len) {
  if (len < 4) return "";
  size_t n = (size_t{p[2]} << 8) | p[3];
  if (n > len - 4) n = len - 4;
  std::string name(reinterpret_cast<const char*>(p + 4), n);
  return name.substr(0, name.find('\0'));
}

class Session {
 public:
  Session(std::string initiator, std::string url, int timeout)
      : initiator_(std::move(initiator)), url_(std::move(url)), timeout_(timeout) {}
  ~Session() {
    if (iscsi_ == nullptr) return;
    if (iscsi_is_logged_in(iscsi_)) iscsi_logout_sync(iscsi_);
    iscsi_destroy_context(iscsi_);
  }

  bool Connect(std::string* error) {
    iscsi_ = iscsi_create_context(initiator_.c_str());
    if (iscsi_ == nullptr) {
      *error = "cannot create an iSCSI context";
      return false;
    }
    iscsi_url* url = iscsi_parse_full_url(iscsi_, url_.c_str());
    if (url == nullptr) {
      *error = std::string("bad target URL: ") + iscsi_get_error(iscsi_);
      return false;
    }
    std::string portal = url->portal;
    lun_ = url->lun;
    iscsi_set_targetname(iscsi_, url->target);
    iscsi_destroy_url(url);
    iscsi_set_session_type(iscsi_, ISCSI_SESSION_NORMAL);
    iscsi_set_header_digest(iscsi_, ISCSI_HEADER_DIGEST_NONE);
    iscsi_set_timeout(iscsi_, timeout_);
    if (iscsi_full_connect_sync(iscsi_, portal.c_str(), lun_) != 0) {
      *error = "login to " + url_ + " failed: " + iscsi_get_error(iscsi_);
      return false;
    }
    scsi_task* task = iscsi_readcapacity16_sync(iscsi_, lun_);
    if (task != nullptr && task->status == SCSI_STATUS_GOOD && task->datain.size >= 12) {
      block_size_ = static_cast<int>(Be32(task->datain.data + 8));
    }
    if (task != nullptr) scsi_free_scsi_task(task);
    return true;
  }

  // Runs one command line; returns its JSON answer (with "quit": true for quit).
  json Run(const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> w;
    for (std::string s; in >> s;) w.push_back(s);
    json out;
    if (w.empty()) return out;
    out["cmd"] = w[0];
    auto arg = [&](size_t i) { return i < w.size() ? w[i] : std::string("0"); };
    const std::string& c = w[0];
    if (c == "quit") {
      out["quit"] = true;
      return out;
    }
    if (c == "register" || c == "register-ignore") {
      scsi_persistent_reserve_out_basic p{};
      bool ignore = c == "register-ignore";
      p.reservation_key = ignore ? 0 : ParseKey(arg(1));
      p.service_action_reservation_key = ParseKey(arg(ignore ? 1 : 2));
      p.aptpl = w.size() > (ignore ? 2u : 3u) && w.back() == "aptpl";
      return ProutCmd(out,
                      ignore ? SCSI_PERSISTENT_RESERVE_REGISTER_AND_IGNORE_EXISTING_KEY
                             : SCSI_PERSISTENT_RESERVE_REGISTER,
                      0, &p);
    }
    if (c == "reserve" || c == "release") {
      scsi_persistent_reserve_out_basic p{};
      p.reservation_key = ParseKey(arg(1));
      return ProutCmd(
          out, c == "reserve" ? SCSI_PERSISTENT_RESERVE_RESERVE : SCSI_PERSISTENT_RESERVE_RELEASE,
          ParseType(arg(2)), &p);
    }
    if (c == "clear") {
      scsi_persistent_reserve_out_basic p{};
      p.reservation_key = ParseKey(arg(1));
      return ProutCmd(out, SCSI_PERSISTENT_RESERVE_CLEAR, 0, &p);
    }
    if (c == "preempt" || c == "preempt-abort") {
      scsi_persistent_reserve_out_basic p{};
      p.reservation_key = ParseKey(arg(1));
      p.service_action_reservation_key = ParseKey(arg(2));
      return ProutCmd(out,
                      c == "preempt" ? SCSI_PERSISTENT_RESERVE_PREEMPT
                                     : SCSI_PERSISTENT_RESERVE_PREEMPT_AND_ABORT,
                      ParseType(arg(3)), &p);
    }
    if (c == "read-keys" || c == "read-reservation" || c == "read-full-status" ||
        c == "report-capabilities") {
      int sa = c == "read-keys"             ? SCSI_PERSISTENT_RESERVE_READ_KEYS
               : c == "read-reservation"    ? SCSI_PERSISTENT_RESERVE_READ_RESERVATION
               : c == "report-capabilities" ? SCSI_PERSISTENT_RESERVE_REPORT_CAPABILITIES
                                            : SCSI_PERSISTENT_RESERVE_READ_FULL_STATUS;
      scsi_task* task =
          Issue(out, [&] { return iscsi_persistent_reserve_in_sync(iscsi_, lun_, sa, 8192); });
      if (task != nullptr && task->status == SCSI_STATUS_GOOD) {
        ParsePrin(sa, task->datain.data, static_cast<size_t>(task->datain.size), &out);
      }
      if (task != nullptr) scsi_free_scsi_task(task);
      return out;
    }
    if (c == "write") {
      std::vector<unsigned char> block(
          static_cast<size_t>(block_size_),
          static_cast<unsigned char>(std::strtoul(arg(2).c_str(), nullptr, 0)));
      uint64_t lba = std::strtoull(arg(1).c_str(), nullptr, 0);
      Free(Issue(out, [&] {
        return iscsi_write16_sync(iscsi_, lun_, lba, block.data(),
                                  static_cast<uint32_t>(block.size()), block_size_, 0, 0, 0, 0, 0);
      }));
      return out;
    }
    if (c == "read") {
      uint64_t lba = std::strtoull(arg(1).c_str(), nullptr, 0);
      scsi_task* task = Issue(out, [&] {
        return iscsi_read16_sync(iscsi_, lun_, lba, static_cast<uint32_t>(block_size_), block_size_,
                                 0, 0, 0, 0, 0);
      });
      if (task != nullptr && task->status == SCSI_STATUS_GOOD && task->datain.size > 0) {
        out["byte"] = task->datain.data[0];
      }
      Free(task);
      return out;
    }
    if (c == "tur") {
      Free(Issue(out, [&] { return iscsi_testunitready_sync(iscsi_, lun_); }));
      return out;
    }
    if (c == "reserve6" || c == "release6") {
      Free(Issue(out, [&] {
        return c == "reserve6" ? iscsi_reserve6_sync(iscsi_, lun_)
                               : iscsi_release6_sync(iscsi_, lun_);
      }));
      return out;
    }
    out["status"] = "USAGE";
    out["error"] = "unknown command";
    return out;
  }

 private:
  static void Free(scsi_task* task) {
    if (task != nullptr) scsi_free_scsi_task(task);
  }

  json ProutCmd(json& out, int sa, int type, scsi_persistent_reserve_out_basic* p) {
    Free(Issue(out, [&] {
      return iscsi_persistent_reserve_out_sync(iscsi_, lun_, sa, SCSI_PERSISTENT_RESERVE_SCOPE_LU,
                                               type, p);
    }));
    return out;
  }

  // Sends the command until it is not answered with a UNIT ATTENTION; fills status and timing.
  template <typename F>
  scsi_task* Issue(json& out, F send) {
    auto started = std::chrono::steady_clock::now();
    scsi_task* task = nullptr;
    for (int attempt = 0; attempt < 8; ++attempt) {
      task = send();
      if (task == nullptr || task->status != SCSI_STATUS_CHECK_CONDITION ||
          task->sense.key != SCSI_SENSE_UNIT_ATTENTION) {
        break;
      }
      out["unit_attentions"].push_back(
          json{{"asc", (task->sense.ascq >> 8) & 0xff}, {"ascq", task->sense.ascq & 0xff}});
      scsi_free_scsi_task(task);
      task = nullptr;
      if (attempt == 7) out["error"] = "unit attention 8 times";
    }
    out["us"] = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - started)
                    .count();
    if (task == nullptr) {
      out["status"] = "TRANSPORT_ERROR";
      if (!out.contains("error")) out["error"] = iscsi_get_error(iscsi_);
    } else if (task->status == SCSI_STATUS_GOOD) {
      out["status"] = "GOOD";
    } else if (task->status == SCSI_STATUS_RESERVATION_CONFLICT) {
      out["status"] = "RESERVATION_CONFLICT";
    } else if (task->status == SCSI_STATUS_CHECK_CONDITION) {
      out["status"] = "CHECK_CONDITION";
      out["sense_key"] = static_cast<int>(task->sense.key);
      out["asc"] = (task->sense.ascq >> 8) & 0xff;
      out["ascq"] = task->sense.ascq & 0xff;
    } else {
      out["status"] = "STATUS_" + std::to_string(task->status);
    }
    return task;
  }

  // PERSISTENT RESERVE IN parameter data, SPC-4 §6.15.2-§6.15.5.
  static void ParsePrin(int sa, const unsigned char* d, size_t n, json* out) {
    if (n < 8) return;
    if (sa == SCSI_PERSISTENT_RESERVE_REPORT_CAPABILITIES) {  // No PRgeneration here (§6.15.4).
      (*out)["length"] = (d[0] << 8) | d[1];
      (*out)["flags"] = json::array({d[2], d[3]});
      (*out)["type_mask"] = (d[4] << 8) | d[5];
      return;
    }
    (*out)["generation"] = Be32(d);
    size_t len = std::min<size_t>(Be32(d + 4) + 8, n);
    if (sa == SCSI_PERSISTENT_RESERVE_READ_KEYS) {
      json keys = json::array();
      for (size_t off = 8; off + 8 <= len; off += 8) keys.push_back(Hex(Be64(d + off)));
      (*out)["keys"] = keys;
    } else if (sa == SCSI_PERSISTENT_RESERVE_READ_RESERVATION) {
      if (len >= 24) {
        (*out)["key"] = Hex(Be64(d + 8));
        (*out)["type"] = d[21] & 0x0f;
      }
    } else {  // READ FULL STATUS: one descriptor per registered I_T nexus.
      json regs = json::array();
      size_t off = 8;
      while (off + 24 <= len) {
        size_t tid_len = Be32(d + off + 20);
        if (off + 24 + tid_len > len) break;
        regs.push_back(json{{"key", Hex(Be64(d + off))},
                            {"holder", (d[off + 12] & 1) != 0},
                            {"all_tg_pt", (d[off + 12] & 2) != 0},
                            {"type", d[off + 13] & 0x0f},
                            {"relative_target_port", (d[off + 18] << 8) | d[off + 19]},
                            {"initiator", TransportIdName(d + off + 24, tid_len)}});
        off += 24 + tid_len;
      }
      (*out)["registrations"] = regs;
    }
  }

  std::string initiator_;
  std::string url_;
  int timeout_;
  iscsi_context* iscsi_ = nullptr;
  int lun_ = 0;
  int block_size_ = 512;
};

}  // namespace

int main(int argc, char** argv) {
  std::string initiator, url;
  int timeout = 30;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--initiator-name" || a == "-i") && i + 1 < argc) {
      initiator = argv[++i];
    } else if (a == "--timeout" && i + 1 < argc) {
      timeout = std::atoi(argv[++i]);
    } else if (a.rfind("iscsi://", 0) == 0) {
      url = a;
    } else {
      std::fputs(kUsage, stderr);
      return 2;
    }
  }
  if (initiator.empty() || url.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  Session session(initiator, url, timeout);
  std::string error;
  if (!session.Connect(&error)) {
    std::cout << json{{"status", "LOGIN_FAILED"}, {"error", error}}.dump() << std::endl;
    return 1;
  }
  std::cout << json{{"status", "LOGGED_IN"}}.dump() << std::endl;
  for (std::string line; std::getline(std::cin, line);) {
    json out = session.Run(line);
    if (out.is_null()) continue;
    if (out.value("quit", false)) break;
    std::cout << out.dump() << std::endl;  // flushed: the driver waits for each answer
  }
  return 0;
}
