// FakeDevice: a minimal in-memory scsi::Device for the iSCSI layer's own tests. It answers
// INQUIRY, TEST UNIT READY, READ CAPACITY(10/16), REPORT LUNS, MODE SENSE(6), READ/WRITE(10/16)
// on LUN 0 and can hold tasks back (to test aborts, disconnects and late TaskDone). The real
// SCSI layer (node-agent/scsi) is tested on its own and by iscsi-test-cu against the agent.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "node-agent/scsi/device.h"

namespace vios::iscsi::testing {

class FakeDevice : public scsi::Device {
 public:
  static constexpr uint32_t kBlockSize = 512;
  explicit FakeDevice(uint64_t blocks = 8192) : data_(blocks * kBlockSize, 0) {}

  void Submit(scsi::Task* task) override;
  void NexusAdded(const scsi::Nexus&) override { nexus_added++; }
  void NexusRemoved(const scsi::Nexus&) override { nexus_removed++; }
  scsi::TaskManagementResult TaskManagement(scsi::TaskManagementFunction function,
                                            const scsi::Nexus&, uint64_t lun) override;

  // Hold makes Submit park tasks until Release (or ReleaseAll) completes them.
  void Hold(bool on);
  size_t HeldCount();
  void ReleaseAll();

  std::vector<uint8_t>& data() { return data_; }
  std::atomic<int> nexus_added{0};
  std::atomic<int> nexus_removed{0};
  std::atomic<int> submitted{0};
  std::atomic<int> resets{0};
  std::atomic<int> last_tmf{0};

 private:
  void Execute(scsi::Task* task);

  std::vector<uint8_t> data_;
  std::mutex mu_;
  bool hold_ = false;
  std::vector<scsi::Task*> held_;
};

}  // namespace vios::iscsi::testing
