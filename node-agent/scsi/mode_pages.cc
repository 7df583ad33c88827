// MODE SENSE(6/10) and MODE SELECT(6/10) (SPC-4 §6.11-§6.14) with the caching (SBC-3 §6.4.5),
// control (SPC-4 §7.5.8) and informational exceptions control (SPC-4 §7.5.12) pages.
//
// No mode parameter is changeable: the changeable-values page control returns all zeroes, and
// MODE SELECT accepts a page only when it repeats the current values (a harmless no-op, which is
// what sg_modes / sdparm round trips do) and otherwise answers INVALID FIELD IN PARAMETER LIST.
#include <array>
#include <cstring>

#include "node-agent/scsi/logical_unit.h"

namespace vios::scsi {
namespace {

constexpr uint8_t kPages[] = {0x08, 0x0A, 0x1C};
constexpr uint8_t kAllPages = 0x3F;

}  // namespace

// BuildModePage writes one page in page_control form (0 current, 1 changeable, 2 default);
// returns its length or 0 for an unknown page.
size_t LogicalUnit::BuildModePage(uint8_t page, uint8_t page_control, uint8_t* out) const {
  const bool changeable = page_control == 1;
  switch (page) {
    case 0x08:  // Caching.
      std::memset(out, 0, 20);
      out[0] = 0x08;
      out[1] = 0x12;
      if (!changeable && config_.write_cache) {
        out[2] = 0x04;  // WCE.
      }
      return 20;
    case 0x0A:  // Control.
      std::memset(out, 0, 12);
      out[0] = 0x0A;
      out[1] = 0x0A;
      if (!changeable) {
        out[3] = 0x10;  // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering.
      }
      return 12;
    case 0x1C:  // Informational exceptions control.
      std::memset(out, 0, 12);
      out[0] = 0x1C;
      out[1] = 0x0A;
      if (!changeable) {
        out[2] = 0x08;  // DEXCPT: no informational exception reporting.
      }
      return 12;
    default:
      return 0;
  }
}

void LogicalUnit::ModeSense6(Task* task) { ModeSense(task, false); }
void LogicalUnit::ModeSense10(Task* task) { ModeSense(task, true); }

void LogicalUnit::ModeSense(Task* task, bool ten) {
  const uint8_t* c = task->cdb.data();
  const bool dbd = (c[1] & 0x08) != 0;
  const bool llbaa = ten && (c[1] & 0x10) != 0;
  const uint8_t page_control = c[2] >> 6;
  const uint8_t page = c[2] & 0x3F;
  const uint8_t subpage = c[3];
  const uint32_t allocation_length = ten ? wire::Load16(c + 7) : c[4];
  if (page_control == 3) {
    SetSense(task, SenseKey::kIllegalRequest, kAscSavingParametersNotSupported);
    task->Complete();
    return;
  }
  if (subpage != 0 && subpage != 0xFF) {
    SetInvalidFieldInCdb(task, 3);
    task->Complete();
    return;
  }
  std::array<uint8_t, 256> data{};
  const size_t header = ten ? 8 : 4;
  size_t n = header;
  const uint64_t capacity = BlockCount();
  if (!dbd) {
    uint8_t* d = data.data() + n;
    if (llbaa) {
      wire::Store64(d, capacity);
      wire::Store32(d + 12, block_size_);
      n += 16;
    } else {
      wire::Store32(d, capacity > 0xFFFFFFFFull ? 0xFFFFFFFFu : static_cast<uint32_t>(capacity));
      wire::Store24(d + 5, block_size_);
      n += 8;
    }
  }
  const size_t descriptors = n - header;
  if (page == kAllPages) {
    for (uint8_t p : kPages) {
      n += BuildModePage(p, page_control, data.data() + n);
    }
  } else {
    const size_t length = BuildModePage(page, page_control, data.data() + n);
    if (length == 0) {
      SetInvalidFieldInCdb(task, 2, 5);
      task->Complete();
      return;
    }
    n += length;
  }
  const uint8_t device_specific = static_cast<uint8_t>((config_.read_only ? 0x80 : 0) | 0x10);
  if (ten) {
    wire::Store16(data.data(), static_cast<uint16_t>(n - 2));
    data[3] = device_specific;
    data[4] = llbaa && !dbd ? 0x01 : 0x00;  // LONGLBA.
    wire::Store16(data.data() + 6, static_cast<uint16_t>(descriptors));
  } else {
    data[0] = static_cast<uint8_t>(n - 1);
    data[2] = device_specific;
    data[3] = static_cast<uint8_t>(descriptors);
  }
  Respond(task, std::span<const uint8_t>(data.data(), n), allocation_length);
  task->Complete();
}

void LogicalUnit::ModeSelect6(Task* task) { ModeSelect(task, false); }
void LogicalUnit::ModeSelect10(Task* task) { ModeSelect(task, true); }

void LogicalUnit::ModeSelect(Task* task, bool ten) {
  const uint8_t* c = task->cdb.data();
  const uint32_t list_length = ten ? wire::Load16(c + 7) : c[4];
  SetTransferLength(task, list_length);
  const auto fail_param = [task](uint16_t byte) {
    SetInvalidFieldInParameterList(task, byte);
    task->Complete();
  };
  if ((c[1] & 0x01) != 0) {  // SP: we cannot save parameters.
    SetInvalidFieldInCdb(task, 1, 0);
    task->Complete();
    return;
  }
  if (list_length == 0) {
    task->SetGood();
    task->Complete();
    return;
  }
  if ((c[1] & 0x10) == 0) {  // PF=0: vendor-specific page format, not supported.
    SetInvalidFieldInCdb(task, 1, 4);
    task->Complete();
    return;
  }
  const size_t header = ten ? 8 : 4;
  if (list_length < header || task->data_out.size() < list_length) {
    SetSense(task, SenseKey::kIllegalRequest, kAscParameterListLengthError);
    task->Complete();
    return;
  }
  const uint8_t* p = task->data_out.data();
  const size_t descriptor_length = ten ? wire::Load16(p + 6) : p[3];
  const bool long_lba = ten && (p[4] & 0x01) != 0;
  const size_t one_descriptor = long_lba ? 16 : 8;
  if (header + descriptor_length > list_length || descriptor_length % one_descriptor != 0) {
    SetSense(task, SenseKey::kIllegalRequest, kAscParameterListLengthError);
    task->Complete();
    return;
  }
  for (size_t off = header; off < header + descriptor_length; off += one_descriptor) {
    const uint32_t length = long_lba ? wire::Load32(p + off + 12) : wire::Load24(p + off + 5);
    if (length != 0 && length != block_size_) {
      fail_param(static_cast<uint16_t>(off + (long_lba ? 12 : 5)));
      return;
    }
  }
  size_t off = header + descriptor_length;
  while (off < list_length) {
    if (off + 2 > list_length) {
      SetSense(task, SenseKey::kIllegalRequest, kAscParameterListLengthError);
      task->Complete();
      return;
    }
    if ((p[off] & 0x40) != 0) {  // SPF: we have no subpages.
      fail_param(static_cast<uint16_t>(off));
      return;
    }
    std::array<uint8_t, 32> current{};
    const size_t length = BuildModePage(p[off] & 0x3F, 0, current.data());
    if (length == 0 || p[off + 1] + 2u != length) {
      fail_param(static_cast<uint16_t>(off));
      return;
    }
    if (off + length > list_length) {
      SetSense(task, SenseKey::kIllegalRequest, kAscParameterListLengthError);
      task->Complete();
      return;
    }
    for (size_t i = 2; i < length; ++i) {
      if (p[off + i] != current[i]) {
        fail_param(static_cast<uint16_t>(off + i));
        return;
      }
    }
    off += length;
  }
  task->SetGood();
  task->Complete();
}

}  // namespace vios::scsi
