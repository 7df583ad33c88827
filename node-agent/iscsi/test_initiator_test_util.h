// TestInitiator: a deliberately small, hand-written iSCSI initiator for the target's own tests. It
// sends exactly the bytes a test builds (including broken ones) over a loopback TCP socket and
// reads PDUs back with timeouts, so tests can check the target's protocol answers.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "node-agent/iscsi/crc32c.h"
#include "node-agent/iscsi/pdu_wire.h"
#include "node-agent/iscsi/text_keys.h"

namespace vios::iscsi::testing {

struct RawPdu {
  Bhs bhs;
  std::vector<uint8_t> data;
  bool digests_ok = true;  // Header and data digests (when in force) matched.
  TextKeys Keys() const {
    TextKeys k;
    std::string error;
    k.Parse(data, &error);
    return k;
  }
};

class TestInitiator {
 public:
  ~TestInitiator() { Disconnect(); }

  bool Connect(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  void Disconnect() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  void SendBytes(std::span<const uint8_t> bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }

  // Send frames bhs + ahs + data with padding and the digests in force.
  void Send(Bhs bhs, std::span<const uint8_t> data = {}, std::span<const uint8_t> ahs = {},
            bool corrupt_data_digest = false) {
    bhs.bytes[4] = static_cast<uint8_t>(ahs.size() / 4);
    bhs.SetDataSegmentLength(static_cast<uint32_t>(data.size()));
    std::vector<uint8_t> out(bhs.bytes.begin(), bhs.bytes.end());
    out.insert(out.end(), ahs.begin(), ahs.end());
    if (header_digest) {
      uint8_t d[4];
      StoreLe32(d, Crc32c(out.data(), out.size()));
      out.insert(out.end(), d, d + 4);
    }
    size_t start = out.size();
    out.insert(out.end(), data.begin(), data.end());
    out.resize(out.size() + PadLength(static_cast<uint32_t>(data.size())), 0);
    if (data_digest && !data.empty()) {
      uint8_t d[4];
      StoreLe32(d, Crc32c(&out[start], out.size() - start) ^ (corrupt_data_digest ? 1 : 0));
      out.insert(out.end(), d, d + 4);
    }
    SendBytes(out);
  }

  // Receive returns the next PDU, or nullopt on timeout or when the target closed (see closed()).
  std::optional<RawPdu> Receive(int timeout_ms = 2000) {
    RawPdu pdu;
    if (!ReadExact(pdu.bhs.bytes.data(), kBhsLength, timeout_ms)) return std::nullopt;
    std::vector<uint8_t> ahs(pdu.bhs.total_ahs_words() * 4u + (header_digest ? 4u : 0u));
    if (!ahs.empty() && !ReadExact(ahs.data(), ahs.size(), timeout_ms)) return std::nullopt;
    if (header_digest) {
      std::vector<uint8_t> header(pdu.bhs.bytes.begin(), pdu.bhs.bytes.end());
      header.insert(header.end(), ahs.begin(), ahs.end() - 4);
      pdu.digests_ok = Crc32c(header.data(), header.size()) == LoadLe32(&ahs[ahs.size() - 4]);
    }
    uint32_t dsl = pdu.bhs.data_segment_length();
    uint32_t padded = dsl + PadLength(dsl);
    std::vector<uint8_t> data(padded + (data_digest && dsl ? 4u : 0u));
    if (!data.empty() && !ReadExact(data.data(), data.size(), timeout_ms)) return std::nullopt;
    if (data_digest && dsl > 0) {
      pdu.digests_ok = pdu.digests_ok && Crc32c(data.data(), padded) == LoadLe32(&data[padded]);
    }
    data.resize(dsl);
    pdu.data = std::move(data);
    if (pdu.bhs.opcode() != Opcode::kNopIn || pdu.bhs.itt() != kReservedTag) {
      exp_stat_sn = pdu.bhs.Field32(24) + 1;
    }
    return pdu;
  }

  // WaitClosed is true if the target closes the connection within timeout_ms (PDUs skipped).
  bool WaitClosed(int timeout_ms = 2000) {
    uint8_t buf[4096];
    while (true) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, timeout_ms) <= 0) return false;
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return true;
    }
  }

  // Login builds one Login Request (CSG/NSG, T bit) with the given keys.
  std::optional<RawPdu> LoginStep(uint8_t csg, uint8_t nsg, bool transit, const TextKeys& keys) {
    Bhs b;
    b.SetOpcode(Opcode::kLoginRequest);
    b.bytes[0] |= 0x40;
    b.SetFlags(static_cast<uint8_t>((transit ? 0x80 : 0) | (csg << 2) | (transit ? nsg : 0)));
    std::memcpy(&b.bytes[8], isid, 6);
    b.SetField16(14, tsih);
    b.SetItt(next_itt++);
    b.SetField32(24, cmd_sn);
    b.SetField32(28, exp_stat_sn);
    std::vector<uint8_t> data;
    keys.Serialize(&data);
    Send(b, data);
    return Receive();
  }

  // LoginNone logs in without authentication straight to the full feature phase. Returns the
  // login status (class << 8 | detail), or -1 on no answer.
  int LoginNone(const std::string& initiator, const std::string& target, TextKeys extra = {}) {
    TextKeys keys;
    keys.Add("InitiatorName", initiator);
    if (target.empty()) {
      keys.Add("SessionType", "Discovery");
    } else {
      keys.Add("TargetName", target);
    }
    keys.Add("AuthMethod", "None");
    auto r = LoginStep(0, 1, true, keys);
    if (!r) return -1;
    first_login = *r;
    int status = (r->bhs.bytes[36] << 8) | r->bhs.bytes[37];
    if (status != 0) return status;
    r = LoginStep(1, 3, true, extra);
    if (!r) return -1;
    status = (r->bhs.bytes[36] << 8) | r->bhs.bytes[37];
    if (status == 0) {
      tsih = r->bhs.Field16(14);
      last_login = *r;
    }
    return status;
  }

  // Command builds a SCSI Command PDU (non-immediate, CmdSN advanced).
  Bhs Command(const std::vector<uint8_t>& cdb, uint32_t edtl, bool read, bool write,
              bool final_bit = true) {
    Bhs b;
    b.SetOpcode(Opcode::kScsiCommand);
    b.SetFlags(
        static_cast<uint8_t>((final_bit ? 0x80 : 0) | (read ? 0x40 : 0) | (write ? 0x20 : 0) | 1));
    b.SetItt(next_itt++);
    b.SetField32(20, edtl);
    b.SetField32(24, cmd_sn++);
    b.SetField32(28, exp_stat_sn);
    std::memcpy(&b.bytes[32], cdb.data(), std::min<size_t>(cdb.size(), 16));
    return b;
  }
  static std::vector<uint8_t> Read10(uint32_t lba, uint16_t blocks) {
    return {0x28,
            0,
            static_cast<uint8_t>(lba >> 24),
            static_cast<uint8_t>(lba >> 16),
            static_cast<uint8_t>(lba >> 8),
            static_cast<uint8_t>(lba),
            0,
            static_cast<uint8_t>(blocks >> 8),
            static_cast<uint8_t>(blocks),
            0};
  }
  static std::vector<uint8_t> Write10(uint32_t lba, uint16_t blocks) {
    auto c = Read10(lba, blocks);
    c[0] = 0x2a;
    return c;
  }
  Bhs NopOut(bool immediate = true) {
    Bhs b;
    b.SetOpcode(Opcode::kNopOut);
    if (immediate) b.bytes[0] |= 0x40;
    b.SetFlags(0x80);
    b.SetItt(next_itt++);
    b.SetField32(20, kReservedTag);
    b.SetField32(24, immediate ? cmd_sn : cmd_sn++);
    b.SetField32(28, exp_stat_sn);
    return b;
  }

  // Logout builds an immediate Logout Request closing the session (reason 0).
  Bhs Logout() {
    Bhs b;
    b.SetOpcode(Opcode::kLogoutRequest);
    b.bytes[0] |= 0x40;
    b.SetFlags(0x80);
    b.SetItt(next_itt++);
    b.SetField32(24, cmd_sn);
    return b;
  }
  // TaskManagement builds an immediate Task Management Function Request for LUN 0.
  Bhs TaskManagement(uint8_t function, uint32_t referenced_itt = kReservedTag) {
    Bhs b;
    b.SetOpcode(Opcode::kTaskManagementRequest);
    b.bytes[0] |= 0x40;
    b.SetFlags(static_cast<uint8_t>(0x80 | function));
    b.SetItt(next_itt++);
    b.SetField32(20, referenced_itt);
    b.SetField32(24, cmd_sn);
    return b;
  }

  int fd() const { return fd_; }
  bool header_digest = false;
  bool data_digest = false;
  uint8_t isid[6] = {0x80, 0x12, 0x34, 0x56, 0x00, 0x01};
  uint16_t tsih = 0;
  uint32_t cmd_sn = 1;
  uint32_t exp_stat_sn = 0;
  uint32_t next_itt = 1;
  RawPdu first_login;  // Security stage answer (carries TargetPortalGroupTag).
  RawPdu last_login;

 private:
  bool ReadExact(uint8_t* out, size_t n, int timeout_ms) {
    size_t got = 0;
    while (got < n) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, timeout_ms) <= 0) return false;
      ssize_t r = recv(fd_, out + got, n - got, 0);
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  }

  int fd_ = -1;
};

}  // namespace vios::iscsi::testing
