// iSCSI PDU wire format (RFC 7143 §11): the 48-byte Basic Header Segment, opcodes, status codes
// and explicit big-endian accessors. Nothing here casts pointers onto network buffers: every field
// is read and written byte by byte, so unaligned receive buffers are fine.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace vios::iscsi {

// --- Byte order helpers (network order is big-endian, RFC 7143 §11.1). ---
inline uint16_t LoadBe16(const uint8_t* p) {
  return static_cast<uint16_t>((static_cast<uint16_t>(p[0]) << 8) | p[1]);
}
inline uint32_t LoadBe24(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 16) | (static_cast<uint32_t>(p[1]) << 8) | p[2];
}
inline uint32_t LoadBe32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | p[3];
}
inline uint64_t LoadBe64(const uint8_t* p) {
  return (static_cast<uint64_t>(LoadBe32(p)) << 32) | LoadBe32(p + 4);
}
inline void StoreBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void StoreBe24(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 16);
  p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v);
}
inline void StoreBe32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
inline void StoreBe64(uint8_t* p, uint64_t v) {
  StoreBe32(p, static_cast<uint32_t>(v >> 32));
  StoreBe32(p + 4, static_cast<uint32_t>(v));
}
// Digests travel least significant byte first (RFC 3720 B.4 lists them that way).
inline uint32_t LoadLe32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
inline void StoreLe32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v >> 16);
  p[3] = static_cast<uint8_t>(v >> 24);
}

// Data segments and AHS are padded to a multiple of 4 bytes (RFC 7143 §11.2.3).
constexpr uint32_t PadLength(uint32_t n) { return (4 - (n & 3)) & 3; }

constexpr size_t kBhsLength = 48;
constexpr size_t kDigestLength = 4;
constexpr uint32_t kReservedTag = 0xffffffff;

// Opcodes (RFC 7143 §11.1.1).
enum class Opcode : uint8_t {
  kNopOut = 0x00,
  kScsiCommand = 0x01,
  kTaskManagementRequest = 0x02,
  kLoginRequest = 0x03,
  kTextRequest = 0x04,
  kDataOut = 0x05,
  kLogoutRequest = 0x06,
  kSnackRequest = 0x10,
  kNopIn = 0x20,
  kScsiResponse = 0x21,
  kTaskManagementResponse = 0x22,
  kLoginResponse = 0x23,
  kTextResponse = 0x24,
  kDataIn = 0x25,
  kLogoutResponse = 0x26,
  kR2t = 0x31,
  kAsyncMessage = 0x32,
  kReject = 0x3f,
};

// Reject reasons (RFC 7143 §11.17.1).
enum class RejectReason : uint8_t {
  kDataDigestError = 0x02,
  kSnackReject = 0x03,
  kProtocolError = 0x04,
  kCommandNotSupported = 0x05,
  kImmediateCommandReject = 0x06,
  kTaskInProgress = 0x07,
  kInvalidDataAck = 0x08,
  kInvalidPduField = 0x09,
  kLongOperationReject = 0x0a,
  kWaitingForLogout = 0x0c,
};

// Login status class/detail pairs (RFC 7143 §11.13.5), high byte class, low byte detail.
enum class LoginStatus : uint16_t {
  kSuccess = 0x0000,
  kInitiatorError = 0x0200,
  kAuthenticationFailure = 0x0201,
  kAuthorizationFailure = 0x0202,
  kNotFound = 0x0203,
  kTargetRemoved = 0x0204,
  kUnsupportedVersion = 0x0205,
  kTooManyConnections = 0x0206,
  kMissingParameter = 0x0207,
  kCantIncludeInSession = 0x0208,
  kSessionTypeNotSupported = 0x0209,
  kSessionDoesNotExist = 0x020a,
  kInvalidDuringLogin = 0x020b,
  kTargetError = 0x0300,
  kServiceUnavailable = 0x0301,
  kOutOfResources = 0x0302,
};

// Task management functions and responses (RFC 7143 §11.5.1, §11.6.1).
enum class TmfResponse : uint8_t {
  kComplete = 0,
  kTaskDoesNotExist = 1,
  kLunDoesNotExist = 2,
  kTaskStillAllegiant = 3,
  kReassignmentNotSupported = 4,
  kNotSupported = 5,
  kAuthorizationFailed = 6,
  kRejected = 255,
};

// Logout reasons and responses (RFC 7143 §11.14.1, §11.15.1).
enum class LogoutReason : uint8_t {
  kCloseSession = 0,
  kCloseConnection = 1,
  kRemoveForRecovery = 2
};
enum class LogoutResponse : uint8_t {
  kSuccess = 0,
  kCidNotFound = 1,
  kRecoveryNotSupported = 2,
  kCleanupFailed = 3,
};

// Login stages (RFC 7143 §11.12.3: CSG/NSG).
enum class Stage : uint8_t { kSecurity = 0, kOperational = 1, kFullFeature = 3 };

// Bhs is the 48-byte Basic Header Segment. Common fields have accessors here; opcode-specific
// fields are read through the views below, which name RFC 7143's field offsets once.
struct Bhs {
  std::array<uint8_t, kBhsLength> bytes{};

  uint8_t RawOpcode() const { return bytes[0] & 0x3f; }
  Opcode opcode() const { return static_cast<Opcode>(RawOpcode()); }
  bool immediate() const { return (bytes[0] & 0x40) != 0; }
  uint8_t flags() const { return bytes[1]; }
  bool final_bit() const { return (bytes[1] & 0x80) != 0; }
  uint8_t total_ahs_words() const { return bytes[4]; }
  uint32_t data_segment_length() const { return LoadBe24(&bytes[5]); }
  uint64_t lun() const { return LoadBe64(&bytes[8]); }
  uint32_t itt() const { return LoadBe32(&bytes[16]); }
  uint32_t Field32(size_t offset) const { return LoadBe32(&bytes[offset]); }
  uint16_t Field16(size_t offset) const { return LoadBe16(&bytes[offset]); }

  void SetOpcode(Opcode op) { bytes[0] = static_cast<uint8_t>(op); }
  void SetFlags(uint8_t f) { bytes[1] = f; }
  void SetDataSegmentLength(uint32_t n) { StoreBe24(&bytes[5], n); }
  void SetLun(uint64_t lun) { StoreBe64(&bytes[8], lun); }
  void SetItt(uint32_t itt) { StoreBe32(&bytes[16], itt); }
  void SetField32(size_t offset, uint32_t v) { StoreBe32(&bytes[offset], v); }
  void SetField16(size_t offset, uint16_t v) { StoreBe16(&bytes[offset], v); }
  // Target-to-initiator sequence fields share offsets in every response (RFC 7143 §11.3.1ff).
  void SetStatSn(uint32_t v) { SetField32(24, v); }
  void SetExpCmdSn(uint32_t v) { SetField32(28, v); }
  void SetMaxCmdSn(uint32_t v) { SetField32(32, v); }
};
static_assert(sizeof(Bhs) == kBhsLength, "BHS must be exactly 48 bytes");

// Initiator-to-target sequence fields: CmdSN at 24, ExpStatSN at 28 for every request opcode.
inline uint32_t CmdSnOf(const Bhs& b) { return b.Field32(24); }
inline uint32_t ExpStatSnOf(const Bhs& b) { return b.Field32(28); }

// SCSI Command (RFC 7143 §11.3).
struct ScsiCommandView {
  const Bhs& b;
  bool read() const { return (b.bytes[1] & 0x40) != 0; }
  bool write() const { return (b.bytes[1] & 0x20) != 0; }
  uint8_t attribute() const { return b.bytes[1] & 0x07; }
  uint32_t expected_transfer_length() const { return b.Field32(20); }
  const uint8_t* cdb() const { return &b.bytes[32]; }
};
constexpr size_t kBhsCdbLength = 16;
constexpr uint8_t kAhsTypeExtendedCdb = 1;
constexpr uint8_t kAhsTypeBidiReadLength = 2;

// SCSI Data-Out (RFC 7143 §11.8).
struct DataOutView {
  const Bhs& b;
  uint32_t ttt() const { return b.Field32(20); }
  uint32_t data_sn() const { return b.Field32(36); }
  uint32_t buffer_offset() const { return b.Field32(40); }
};

// Login Request (RFC 7143 §11.12).
struct LoginRequestView {
  const Bhs& b;
  bool transit() const { return (b.bytes[1] & 0x80) != 0; }
  bool cont() const { return (b.bytes[1] & 0x40) != 0; }
  uint8_t csg() const { return (b.bytes[1] >> 2) & 3; }
  uint8_t nsg() const { return b.bytes[1] & 3; }
  uint8_t version_max() const { return b.bytes[2]; }
  uint8_t version_min() const { return b.bytes[3]; }
  std::array<uint8_t, 6> isid() const {
    std::array<uint8_t, 6> v{};
    std::memcpy(v.data(), &b.bytes[8], 6);
    return v;
  }
  uint16_t tsih() const { return b.Field16(14); }
  uint16_t cid() const { return b.Field16(20); }
};

// Text Request (RFC 7143 §11.10) and NOP-Out (§11.18): Target Transfer Tag at 20.
struct TextRequestView {
  const Bhs& b;
  bool cont() const { return (b.bytes[1] & 0x40) != 0; }
  uint32_t ttt() const { return b.Field32(20); }
};

// Task Management Function Request (RFC 7143 §11.5).
struct TaskManagementView {
  const Bhs& b;
  uint8_t function() const { return b.bytes[1] & 0x7f; }
  uint32_t referenced_task_tag() const { return b.Field32(20); }
  uint32_t ref_cmd_sn() const { return b.Field32(32); }
};

// Logout Request (RFC 7143 §11.14).
struct LogoutRequestView {
  const Bhs& b;
  uint8_t reason() const { return b.bytes[1] & 0x7f; }
  uint16_t cid() const { return b.Field16(20); }
};

// Serial number arithmetic for 32-bit sequence numbers (RFC 1982, RFC 7143 §4.2.2.1).
inline bool SnLess(uint32_t a, uint32_t b) {
  return a != b && static_cast<uint32_t>(b - a) < 0x80000000u;
}
inline bool SnLessEq(uint32_t a, uint32_t b) { return a == b || SnLess(a, b); }

}  // namespace vios::iscsi
