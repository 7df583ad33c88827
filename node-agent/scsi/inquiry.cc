// INQUIRY (SPC-4 §6.6): standard data and the vital product data pages 0x00, 0x80, 0x83 (SPC-4
// §7.8), 0xB0, 0xB1, 0xB2 (SBC-3 §6.6).
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "node-agent/scsi/logical_unit.h"

namespace vios::scsi {
namespace {

constexpr uint8_t kSupportedVpd[] = {0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2};

// CopyPadded writes text into a fixed-width ASCII field, space-padded (SPC-4 §4.4.1).
void CopyPadded(uint8_t* out, size_t width, std::string_view text) {
  std::memset(out, ' ', width);
  std::memcpy(out, text.data(), std::min(width, text.size()));
}

uint64_t Fnv1a(std::string_view text, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ull ^ seed;
  for (char c : text) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

// AppendNameString appends a SCSI name string designator (SPC-4 §7.8.6.11): UTF-8, null
// terminated, padded to a multiple of 4.
size_t AppendNameString(uint8_t* out, size_t capacity, uint8_t association, std::string_view name) {
  size_t length = (name.size() + 1 + 3) & ~size_t{3};
  if (length > 252) {
    length = 252;
    name = name.substr(0, 251);
  }
  if (4 + length > capacity) {
    return 0;
  }
  out[0] = 0x53;  // Protocol identifier iSCSI (5), code set UTF-8 (3).
  out[1] = static_cast<uint8_t>(0x80 | (association << 4) | 0x08);  // PIV, type SCSI name string.
  out[2] = 0;
  out[3] = static_cast<uint8_t>(length);
  std::memset(out + 4, 0, length);
  std::memcpy(out + 4, name.data(), name.size());
  return 4 + length;
}

}  // namespace

size_t LogicalUnit::BuildStandardInquiry(uint8_t* out) const {
  constexpr size_t kLength = 96;
  std::memset(out, 0, kLength);
  out[0] = 0x00;  // Peripheral qualifier 0, direct access block device.
  out[2] = 0x06;  // VERSION: SPC-4.
  out[3] = 0x12;  // HISUP, response data format 2.
  out[4] = kLength - 5;
  out[7] = 0x02;  // CMDQUE.
  CopyPadded(out + 8, 8, config_.vendor);
  CopyPadded(out + 16, 16, config_.product);
  CopyPadded(out + 32, 4, config_.revision);
  // Version descriptors (SPC-4 §6.6.2 table): SAM-5, iSCSI, SPC-4, SBC-3.
  wire::Store16(out + 58, 0x00A0);
  wire::Store16(out + 60, 0x0960);
  wire::Store16(out + 62, 0x0460);
  wire::Store16(out + 64, 0x04C0);
  return kLength;
}

size_t LogicalUnit::BuildVpd(uint8_t page, const Task* task, uint8_t* out, size_t capacity) const {
  std::memset(out, 0, capacity);
  out[0] = 0x00;
  out[1] = page;
  size_t length = 4;
  const bool discard = device_->SupportsDiscard();
  switch (page) {
    case 0x00:
      std::memcpy(out + 4, kSupportedVpd, sizeof(kSupportedVpd));
      length += sizeof(kSupportedVpd);
      break;
    case 0x80: {
      std::string serial = config_.serial;
      if (serial.empty()) {
        char hex[17];
        std::snprintf(hex, sizeof(hex), "%016llx",
                      static_cast<unsigned long long>(Fnv1a(config_.volume_id, 0)));
        serial = hex;
      }
      serial.resize(std::min<size_t>(serial.size(), capacity - 4));
      std::memcpy(out + 4, serial.data(), serial.size());
      length += serial.size();
      break;
    }
    case 0x83: {
      uint8_t* d = out + 4;
      // NAA IEEE Registered Extended (NAA 6, SPC-4 §7.8.6.6.5), from the volume id.
      d[0] = 0x01;  // Binary.
      d[1] = 0x03;  // Association: logical unit; type NAA.
      d[3] = 16;
      const uint64_t hi = Fnv1a(config_.volume_id, 0);
      const uint64_t lo = Fnv1a(config_.volume_id, 0x9e3779b97f4a7c15ull);
      wire::Store64(d + 4, (hi & 0x0FFFFFFFFFFFFFFFull) | 0x6000000000000000ull);
      wire::Store64(d + 12, lo);
      d += 20;
      // T10 vendor id designator (SPC-4 §7.8.6.4): vendor + volume id, ASCII.
      const std::string_view id = config_.volume_id;
      const size_t t10_length = std::min<size_t>(8 + id.size(), 200);
      d[0] = 0x02;  // ASCII.
      d[1] = 0x01;  // Logical unit; T10 vendor id.
      d[3] = static_cast<uint8_t>(t10_length);
      CopyPadded(d + 4, 8, config_.vendor);
      std::memcpy(d + 12, id.data(), t10_length - 8);
      d += 4 + t10_length;
      if (task != nullptr && task->nexus != nullptr) {
        const std::string_view port = task->nexus->target_port;
        // Relative target port (SPC-4 §7.8.6.7) and target port name.
        d[0] = 0x51;  // iSCSI, binary.
        d[1] = 0x94;  // PIV, target port, relative target port.
        d[3] = 4;
        wire::Store16(d + 6, task->nexus->relative_target_port);
        d += 8;
        const size_t room = capacity - static_cast<size_t>(d - out);
        d += AppendNameString(d, room, 1, port);
        // Target device name: the target IQN without ",t,0x<TPGT>".
        const size_t comma = port.find(",t,");
        const size_t room2 = capacity - static_cast<size_t>(d - out);
        d += AppendNameString(d, room2, 2, port.substr(0, comma));
      }
      length = static_cast<size_t>(d - out);
      break;
    }
    case 0xB0: {
      length = 64;
      const uint32_t granularity = config_.physical_block_bytes > block_size_
                                       ? config_.physical_block_bytes / block_size_
                                       : 1;
      out[4] = 0x01;  // WSNZ: WRITE SAME with NUMBER OF LOGICAL BLOCKS 0 is not supported.
      out[5] = config_.max_compare_and_write_blocks;
      wire::Store16(out + 6, static_cast<uint16_t>(granularity));
      wire::Store32(out + 8, config_.max_transfer_bytes / block_size_);
      wire::Store32(out + 12, config_.optimal_transfer_bytes / block_size_);
      if (discard) {
        wire::Store32(out + 20, config_.max_unmap_blocks);
        wire::Store32(out + 24, config_.max_unmap_descriptors);
        wire::Store32(out + 28, granularity);
        wire::Store32(out + 32, 0x80000000u);  // UGAVALID, alignment 0.
      }
      wire::Store64(out + 36, config_.max_write_same_blocks);
      break;
    }
    case 0xB1:
      length = 64;
      wire::Store16(out + 4, 0x0001);  // MEDIUM ROTATION RATE: non-rotating medium.
      break;
    case 0xB2:
      length = 8;
      if (discard) {
        out[5] = 0x80 | 0x40 | 0x20 | 0x04;  // LBPU, LBPWS, LBPWS10, LBPRZ.
        out[6] = 0x02;                       // PROVISIONING TYPE: thin provisioned.
      }
      break;
    default:
      return 0;
  }
  wire::Store16(out + 2, static_cast<uint16_t>(length - 4));
  return length;
}

void LogicalUnit::Inquiry(Task* task) {
  const uint8_t* cdb = task->cdb.data();
  const bool evpd = (cdb[1] & 0x01) != 0;
  const uint8_t page = cdb[2];
  const uint32_t allocation_length = wire::Load16(cdb + 3);
  std::array<uint8_t, 1024> data;
  if (!evpd) {
    if (page != 0) {
      SetInvalidFieldInCdb(task, 2);
      task->Complete();
      return;
    }
    const size_t n = BuildStandardInquiry(data.data());
    Respond(task, std::span<const uint8_t>(data.data(), n), allocation_length);
    task->Complete();
    return;
  }
  const size_t n = BuildVpd(page, task, data.data(), data.size());
  if (n == 0) {
    SetInvalidFieldInCdb(task, 2);
  } else {
    Respond(task, std::span<const uint8_t>(data.data(), n), allocation_length);
  }
  task->Complete();
}

}  // namespace vios::scsi
