// FakeDevice implementation: just enough SBC for libiscsi's tools and our own test initiator.
#include "node-agent/iscsi/fake_device_test_util.h"

#include <algorithm>
#include <cstring>

namespace vios::iscsi::testing {
namespace {

uint64_t Be(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}
void PutBe(uint8_t* p, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; --i, v >>= 8) p[i] = static_cast<uint8_t>(v);
}

size_t CopyIn(scsi::Task* task, const uint8_t* src, size_t n) {
  n = std::min(n, task->data_in.size());
  if (n == 0) return 0;
  std::memcpy(task->data_in.data(), src, n);
  task->data_in_length = static_cast<uint32_t>(n);
  return n;
}

}  // namespace

void FakeDevice::Submit(scsi::Task* task) {
  submitted++;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (hold_) {
      held_.push_back(task);
      return;
    }
  }
  Execute(task);
}

void FakeDevice::Hold(bool on) {
  std::lock_guard<std::mutex> lock(mu_);
  hold_ = on;
}

size_t FakeDevice::HeldCount() {
  std::lock_guard<std::mutex> lock(mu_);
  return held_.size();
}

void FakeDevice::ReleaseAll() {
  std::vector<scsi::Task*> tasks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks.swap(held_);
  }
  for (auto* t : tasks) Execute(t);
}

scsi::TaskManagementResult FakeDevice::TaskManagement(scsi::TaskManagementFunction function,
                                                      const scsi::Nexus&, uint64_t lun) {
  last_tmf = static_cast<int>(function);
  resets++;
  return lun == 0 ? scsi::TaskManagementResult::kFunctionComplete
                  : scsi::TaskManagementResult::kIncorrectLun;
}

void FakeDevice::Execute(scsi::Task* task) {
  task->ResetResult();
  const uint8_t* cdb = task->cdb.data();
  uint64_t blocks = data_.size() / kBlockSize;
  if (task->lun != 0 && cdb[0] != 0x12 && cdb[0] != 0xa0) {
    task->SetCheckCondition(scsi::SenseKey::kIllegalRequest, 0x25, 0x00);
    task->Complete();
    return;
  }
  switch (cdb[0]) {
    case 0x00:  // TEST UNIT READY
      break;
    case 0x12: {  // INQUIRY
      uint8_t inq[96] = {};
      inq[0] = task->lun == 0 ? 0x00 : 0x7f;
      if (cdb[1] & 1) {  // VPD: supported pages only.
        inq[1] = cdb[2];
        if (cdb[2] != 0) {
          task->SetCheckCondition(scsi::SenseKey::kIllegalRequest, 0x24, 0x00);
          break;
        }
        inq[3] = 1;
        inq[4] = 0x00;
        CopyIn(task, inq, std::min<size_t>(5, Be(cdb + 3, 2)));
        break;
      }
      inq[2] = 0x06;
      inq[3] = 0x02;
      inq[4] = 91;
      std::memcpy(inq + 8, "VIOS    ", 8);
      std::memcpy(inq + 16, "FAKE DEVICE     ", 16);
      std::memcpy(inq + 32, "0001", 4);
      CopyIn(task, inq, std::min<size_t>(sizeof(inq), Be(cdb + 3, 2)));
      break;
    }
    case 0x25: {  // READ CAPACITY(10)
      uint8_t cap[8];
      PutBe(cap, blocks - 1, 4);
      PutBe(cap + 4, kBlockSize, 4);
      CopyIn(task, cap, 8);
      break;
    }
    case 0x9e: {  // READ CAPACITY(16)
      uint8_t cap[32] = {};
      PutBe(cap, blocks - 1, 8);
      PutBe(cap + 8, kBlockSize, 4);
      CopyIn(task, cap, std::min<size_t>(32, Be(cdb + 10, 4)));
      break;
    }
    case 0xa0: {  // REPORT LUNS
      uint8_t luns[16] = {};
      PutBe(luns, 8, 4);
      CopyIn(task, luns, std::min<size_t>(16, Be(cdb + 6, 4)));
      break;
    }
    case 0x1a: {  // MODE SENSE(6): empty header.
      uint8_t hdr[4] = {3, 0, 0, 0};
      CopyIn(task, hdr, std::min<size_t>(4, cdb[4]));
      break;
    }
    case 0x28:
    case 0x2a:
    case 0x88:
    case 0x8a: {  // READ/WRITE (10/16)
      bool ten = cdb[0] == 0x28 || cdb[0] == 0x2a;
      uint64_t lba = ten ? Be(cdb + 2, 4) : Be(cdb + 2, 8);
      uint64_t count = ten ? Be(cdb + 7, 2) : Be(cdb + 10, 4);
      if (lba + count > blocks) {
        task->SetCheckCondition(scsi::SenseKey::kIllegalRequest, 0x21, 0x00);
        break;
      }
      size_t bytes = count * kBlockSize;
      task->transfer_length = static_cast<uint32_t>(bytes);
      if (cdb[0] == 0x28 || cdb[0] == 0x88) {
        CopyIn(task, data_.data() + lba * kBlockSize, bytes);
      } else {
        // Whole blocks only: what the CDB asks for, cut to what the initiator sent.
        size_t n = std::min(bytes, task->data_out.size()) / kBlockSize * kBlockSize;
        if (n > 0) std::memcpy(data_.data() + lba * kBlockSize, task->data_out.data(), n);
      }
      break;
    }
    default:
      task->SetCheckCondition(scsi::SenseKey::kIllegalRequest, 0x20, 0x00);
      break;
  }
  task->Complete();
}

}  // namespace vios::iscsi::testing
