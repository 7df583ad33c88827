// Test helpers for the SCSI layer: a Task with owned buffers that records its completion.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "node-agent/scsi/device.h"
#include "node-agent/scsi/task.h"

namespace vios::scsi::testing {

// TestTask owns its CDB, buffers and completion; Run() submits and waits synchronously.
class TestTask : public TaskCompletion {
 public:
  TestTask(std::initializer_list<uint8_t> cdb_bytes, uint32_t data_in_size = 0,
           std::vector<uint8_t> out = {}) {
    size_t i = 0;
    for (uint8_t b : cdb_bytes) {
      task.cdb[i++] = b;
    }
    task.cdb_length = std::max<size_t>(i, 16);
    in.resize(data_in_size);
    data_out = std::move(out);
    task.data_in = std::span<uint8_t>(in);
    task.data_out = std::span<const uint8_t>(data_out);
    task.direction = data_in_size != 0
                         ? DataDirection::kRead
                         : (data_out.empty() ? DataDirection::kNone : DataDirection::kWrite);
    task.expected_transfer_length =
        static_cast<uint32_t>(data_in_size != 0 ? data_in_size : data_out.size());
    task.completion = this;
    task.nexus = &nexus;
    nexus.initiator_port = "iqn.2026-11.dev.vios:initiator,i,0x000000000001";
    nexus.target_port = "iqn.2026-11.dev.vios:target,t,0x0001";
    nexus.initiator_name = "iqn.2026-11.dev.vios:initiator";
  }
  void TaskDone(Task* t) override {
    EXPECT_EQ(t, &task);
    done.fetch_add(1);
  }
  template <typename Target>
  TestTask& Run(Target& target) {
    target.Execute(&task);
    EXPECT_EQ(done.load(), 1) << "task not completed exactly once";
    return *this;
  }
  TestTask& Submit(Device& device) {
    device.Submit(&task);
    EXPECT_EQ(done.load(), 1) << "task not completed exactly once";
    return *this;
  }
  uint8_t SenseKeyValue() const { return task.sense[2] & 0x0F; }
  uint8_t AscValue() const { return task.sense[12]; }
  uint8_t AscqValue() const { return task.sense[13]; }
  std::vector<uint8_t> DataIn() const {
    return std::vector<uint8_t>(in.begin(), in.begin() + task.data_in_length);
  }

  Task task;
  Nexus nexus;
  std::vector<uint8_t> in;
  std::vector<uint8_t> data_out;
  std::atomic<int> done{0};
};

// Checks CHECK CONDITION with the given sense key / ASC / ASCQ.
#define EXPECT_SENSE(t, key, asc_, ascq_)                              \
  do {                                                                 \
    EXPECT_EQ((t).task.status, ::vios::scsi::Status::kCheckCondition); \
    EXPECT_EQ((t).SenseKeyValue(), static_cast<uint8_t>(key));         \
    EXPECT_EQ((t).AscValue(), (asc_));                                 \
    EXPECT_EQ((t).AscqValue(), (ascq_));                               \
  } while (0)

#define EXPECT_GOOD(t) EXPECT_EQ((t).task.status, ::vios::scsi::Status::kGood)

}  // namespace vios::scsi::testing
