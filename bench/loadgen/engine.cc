// Engine: the asynchronous libiscsi I/O loop of vios-loadgen (see engine.h).
#include "bench/loadgen/engine.h"

#include <poll.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <span>

#include "bench/loadgen/block_stamp.h"

namespace vios::bench {
namespace {

std::atomic<bool> g_stop{false};

constexpr uint32_t kMaxReportedFailures = 10;
constexpr uint64_t kMaxVerifyChunks = uint64_t{1} << 27;  // 1 GiB of generation map.

uint64_t NextRandom(uint64_t* state) {
  // xorshift64*: cheap, good enough to spread offsets.
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1Dull;
}

}  // namespace

void RequestStop() { g_stop.store(true); }

Engine::Engine(Options options) : options_(std::move(options)) {}

Engine::~Engine() {
  if (iscsi_ != nullptr) {
    if (iscsi_is_logged_in(iscsi_)) {
      iscsi_logout_sync(iscsi_);
    }
    iscsi_destroy_context(iscsi_);
  }
}

bool Engine::Connect(std::string* error) {
  iscsi_ = iscsi_create_context(options_.initiator_name.c_str());
  if (iscsi_ == nullptr) {
    *error = "cannot create an iSCSI context";
    return false;
  }
  iscsi_url* url = iscsi_parse_full_url(iscsi_, options_.url.c_str());
  if (url == nullptr) {
    *error = std::string("bad target URL: ") + iscsi_get_error(iscsi_);
    return false;
  }
  std::string portal = url->portal;
  lun_ = url->lun;
  std::string user = options_.chap_user.empty() ? url->user : options_.chap_user;
  std::string password = options_.chap_user.empty() ? url->passwd : options_.chap_password;
  iscsi_set_targetname(iscsi_, url->target);
  iscsi_destroy_url(url);
  iscsi_set_session_type(iscsi_, ISCSI_SESSION_NORMAL);
  // No digests: both targets of a comparison are measured the same way.
  iscsi_set_header_digest(iscsi_, ISCSI_HEADER_DIGEST_NONE);
  if (!user.empty()) {
    iscsi_set_initiator_username_pwd(iscsi_, user.c_str(), password.c_str());
  }
  if (!options_.target_user.empty()) {
    iscsi_set_target_username_pwd(iscsi_, options_.target_user.c_str(),
                                  options_.target_password.c_str());
  }
  iscsi_set_timeout(iscsi_, static_cast<int>(options_.stall_timeout_seconds) + 1);
  if (iscsi_full_connect_sync(iscsi_, portal.c_str(), lun_) != 0) {
    *error = "login to " + options_.url + " failed: " + iscsi_get_error(iscsi_);
    return false;
  }

  scsi_task* task = iscsi_readcapacity16_sync(iscsi_, lun_);
  if (task == nullptr || task->status != SCSI_STATUS_GOOD) {
    *error = std::string("READ CAPACITY(16) failed: ") + iscsi_get_error(iscsi_);
    if (task != nullptr) {
      scsi_free_scsi_task(task);
    }
    return false;
  }
  auto* rc16 = static_cast<scsi_readcapacity16*>(scsi_datain_unmarshall(task));
  if (rc16 == nullptr) {
    scsi_free_scsi_task(task);
    *error = "cannot parse READ CAPACITY(16) data";
    return false;
  }
  block_size_ = rc16->block_length;
  lun_blocks_ = rc16->returned_lba + 1;
  scsi_free_scsi_task(task);

  if (block_size_ == 0 || options_.block_bytes % block_size_ != 0 ||
      options_.offset_bytes % block_size_ != 0) {
    *error =
        "--bs and --offset must be multiples of the LUN block size " + std::to_string(block_size_);
    return false;
  }
  if (options_.verify && block_size_ < kMinStampBlock) {
    *error = "verify needs a block size of at least 64 bytes";
    return false;
  }
  uint64_t lun_bytes = lun_blocks_ * block_size_;
  if (options_.offset_bytes >= lun_bytes) {
    *error = "--offset is beyond the end of the LUN";
    return false;
  }
  uint64_t region = lun_bytes - options_.offset_bytes;
  if (options_.size_limit != 0 && options_.size_limit < region) {
    region = options_.size_limit;
  }
  region_chunks_ = region / options_.block_bytes;
  if (region_chunks_ == 0) {
    *error = "the region is smaller than one I/O";
    return false;
  }
  if (options_.verify && region_chunks_ > kMaxVerifyChunks) {
    *error =
        "verify mode keeps a generation per I/O-sized chunk: limit the region with "
        "--size-limit";
    return false;
  }
  region_first_lba_ = options_.offset_bytes / block_size_;
  lbas_per_chunk_ = options_.block_bytes / block_size_;
  result_.block_size = block_size_;
  result_.lun_bytes = lun_bytes;
  result_.region_bytes = region_chunks_ * options_.block_bytes;
  return true;
}

void Engine::Fail(const std::string& message) {
  if (result_.fatal_error.empty()) {
    result_.fatal_error = message;
  }
  issuing_ = false;
}

bool Engine::PickTimed(Slot* slot) {
  if (!issuing_ || (options_.ios != 0 && issued_ >= options_.ios)) {
    return false;
  }
  switch (options_.pattern) {
    case Pattern::kRead:
    case Pattern::kRandRead:
      slot->write = false;
      break;
    case Pattern::kWrite:
    case Pattern::kRandWrite:
      slot->write = true;
      break;
    case Pattern::kRandRw:
      slot->write = NextRandom(&rng_) % 100 >= options_.read_percent;
      break;
  }
  uint64_t chunk = 0;
  if (PatternRandom(options_.pattern)) {
    chunk = NextRandom(&rng_) % region_chunks_;
  } else {
    chunk = sequential_cursor_;
  }
  if (options_.verify) {
    // Skip chunks with a command in flight; qd <= chunks guarantees a free one.
    for (uint64_t tries = 0; busy_[chunk] != 0; ++tries) {
      if (tries >= region_chunks_) {
        return false;
      }
      chunk = chunk + 1 == region_chunks_ ? 0 : chunk + 1;
    }
    busy_[chunk] = 1;
  }
  if (!PatternRandom(options_.pattern)) {
    sequential_cursor_ = chunk + 1 == region_chunks_ ? 0 : chunk + 1;
  }
  slot->chunk = chunk;
  ++issued_;
  return true;
}

bool Engine::PickReadback(Slot* slot) {
  while (readback_cursor_ < region_chunks_ && generation_[readback_cursor_] == 0) {
    ++readback_cursor_;
  }
  if (readback_cursor_ >= region_chunks_ || !result_.fatal_error.empty()) {
    return false;
  }
  slot->chunk = readback_cursor_++;
  slot->write = false;
  return true;
}

bool Engine::Issue(Slot* slot) {
  bool more = phase_ == Phase::kTimed ? PickTimed(slot) : PickReadback(slot);
  if (!more) {
    return false;
  }
  uint64_t lba = region_first_lba_ + slot->chunk * lbas_per_chunk_;
  auto len = static_cast<uint32_t>(options_.block_bytes);
  scsi_task* task = nullptr;
  slot->start = Clock::now();
  if (slot->write) {
    if (options_.verify) {
      uint64_t generation = ++next_generation_;
      for (uint64_t i = 0; i < lbas_per_chunk_; ++i) {
        StampBlock(std::span<uint8_t>(slot->buffer.get() + i * block_size_, block_size_), lba + i,
                   generation, run_id_);
      }
      // Recorded at submission: the chunk is exclusively ours until completion, and a failed
      // write is reported as an I/O error anyway.
      generation_[slot->chunk] = generation;
    }
    task =
        iscsi_write16_task(iscsi_, lun_, lba, slot->buffer.get(), len,
                           static_cast<int>(block_size_), 0, 0, 0, 0, 0, &Engine::Completed, slot);
  } else {
    slot->iov.iov_base = slot->buffer.get();
    slot->iov.iov_len = len;
    task = iscsi_read16_iov_task(iscsi_, lun_, lba, len, static_cast<int>(block_size_), 0, 0, 0, 0,
                                 0, &Engine::Completed, slot, &slot->iov, 1);
  }
  if (task == nullptr) {
    Fail(std::string("cannot submit a command: ") + iscsi_get_error(iscsi_));
    if (options_.verify) {
      busy_[slot->chunk] = 0;
    }
    return false;
  }
  ++outstanding_;
  return true;
}

void Engine::Completed(iscsi_context* /*iscsi*/, int status, void* command_data,
                       void* private_data) {
  auto* slot = static_cast<Slot*>(private_data);
  slot->engine->Finish(slot, status, static_cast<scsi_task*>(command_data));
}

void Engine::Finish(Slot* slot, int status, scsi_task* task) {
  --outstanding_;
  auto now = Clock::now();
  last_progress_ = now;
  auto nanos = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(now - slot->start).count());
  bool ok = status == SCSI_STATUS_GOOD && task != nullptr &&
            !(task->residual_status == SCSI_RESIDUAL_UNDERFLOW && task->residual > 0);
  if (!ok) {
    ++result_.io_errors;
    if (!options_.quiet && result_.io_errors <= kMaxReportedFailures) {
      std::fprintf(
          stderr, "vios-loadgen: %s at lba %llu failed: status 0x%x sense %s/0x%04x %s\n",
          slot->write ? "write" : "read",
          static_cast<unsigned long long>(region_first_lba_ + slot->chunk * lbas_per_chunk_),
          static_cast<unsigned>(status),
          task != nullptr ? scsi_sense_key_str(task->sense.key) : "-",
          task != nullptr ? static_cast<unsigned>(task->sense.ascq) : 0u, iscsi_get_error(iscsi_));
    }
  } else if (phase_ == Phase::kTimed) {
    OpStats& stats = slot->write ? result_.write : result_.read;
    ++stats.ios;
    stats.bytes += options_.block_bytes;
    stats.latency.Record(nanos);
    if (!slot->write && options_.verify) {
      VerifyRead(*slot);
    }
  } else {
    VerifyRead(*slot);
  }
  if (task != nullptr) {
    scsi_free_scsi_task(task);
  }
  if (options_.verify) {
    busy_[slot->chunk] = 0;
  }
  if (g_stop.load(std::memory_order_relaxed)) {
    issuing_ = false;
  }
  Issue(slot);
}

void Engine::VerifyRead(const Slot& slot) {
  uint64_t expected = generation_[slot.chunk];
  uint64_t first_lba = region_first_lba_ + slot.chunk * lbas_per_chunk_;
  for (uint64_t i = 0; i < lbas_per_chunk_; ++i) {
    uint64_t lba = first_lba + i;
    uint64_t found = 0;
    StampStatus s =
        CheckBlock(std::span<const uint8_t>(slot.buffer.get() + i * block_size_, block_size_), lba,
                   expected, &found);
    ++result_.verify.blocks_checked;
    if (phase_ == Phase::kReadback) {
      ++result_.verify.readback_blocks;
    }
    // A run that writes may read blocks it has not written yet: those are not failures.
    if (s == StampStatus::kOk ||
        (s == StampStatus::kUnwritten && expected == 0 && PatternWrites(options_.pattern))) {
      continue;
    }
    ++result_.verify.failures;
    ++result_.verify.failures_by_kind[StampStatusName(s)];
    if (!options_.quiet && reported_failures_++ < kMaxReportedFailures) {
      std::fprintf(
          stderr, "vios-loadgen: verify: lba %llu: %s (found generation %llu, expected %llu)\n",
          static_cast<unsigned long long>(lba), StampStatusName(s),
          static_cast<unsigned long long>(found), static_cast<unsigned long long>(expected));
    }
  }
}

void Engine::Drive() {
  auto stall = std::chrono::duration<double>(options_.stall_timeout_seconds);
  last_progress_ = Clock::now();
  while (outstanding_ > 0) {
    pollfd pfd{};
    pfd.fd = iscsi_get_fd(iscsi_);
    pfd.events = static_cast<short>(iscsi_which_events(iscsi_));
    int n = poll(&pfd, 1, 100);
    if (n < 0 && errno != EINTR) {
      Fail(std::string("poll: ") + std::strerror(errno));
      return;
    }
    if (iscsi_service(iscsi_, n > 0 ? pfd.revents : 0) < 0) {
      Fail(std::string("iSCSI connection failed: ") + iscsi_get_error(iscsi_));
      return;
    }
    auto now = Clock::now();
    if (phase_ == Phase::kTimed && issuing_ && options_.duration_seconds > 0 && now >= deadline_) {
      issuing_ = false;
    }
    if (g_stop.load(std::memory_order_relaxed)) {
      issuing_ = false;
    }
    if (now - last_progress_ > stall) {
      Fail("no I/O completed for " + std::to_string(options_.stall_timeout_seconds) + " s");
      return;
    }
  }
}

RunResult Engine::Run() {
  run_id_ = options_.seed != 0 ? options_.seed
                               : static_cast<uint64_t>(Clock::now().time_since_epoch().count()) | 1;
  rng_ = run_id_ * 0x9E3779B97F4A7C15ull | 1;
  uint32_t qd = options_.queue_depth;
  if (options_.verify) {
    generation_.assign(region_chunks_, 0);
    busy_.assign(region_chunks_, 0);
    if (qd > region_chunks_) {
      qd = static_cast<uint32_t>(region_chunks_);  // One command per chunk at most.
    }
  }
  slots_.resize(qd);
  for (auto& slot : slots_) {
    slot.engine = this;
    slot.buffer = std::make_unique<uint8_t[]>(options_.block_bytes);
    // Non-zero, non-trivial content for plain writes (filled once, not per I/O).
    uint64_t x = rng_;
    for (uint64_t i = 0; i < options_.block_bytes; ++i) {
      slot.buffer[i] = static_cast<uint8_t>(NextRandom(&x) >> 56);
    }
  }

  auto start = Clock::now();
  deadline_ = start + std::chrono::duration_cast<Clock::duration>(
                          std::chrono::duration<double>(options_.duration_seconds));
  phase_ = Phase::kTimed;
  issuing_ = true;
  for (auto& slot : slots_) {
    if (!Issue(&slot)) {
      break;
    }
  }
  Drive();
  result_.elapsed_seconds = std::chrono::duration<double>(Clock::now() - start).count();

  if (options_.verify && PatternWrites(options_.pattern) && result_.fatal_error.empty()) {
    phase_ = Phase::kReadback;
    issuing_ = true;
    for (auto& slot : slots_) {
      if (!Issue(&slot)) {
        break;
      }
    }
    Drive();
  }
  return result_;
}

}  // namespace vios::bench
