// Volume: offset translation over extents, split and join of spanning requests.
#include "node-agent/pool/volume.h"

#include <algorithm>
#include <cerrno>

namespace vios::pool {

struct Volume::Split {
  struct Part final : backend::IoCompletion {
    Split* split = nullptr;
    backend::IoRequest request;
    void IoDone(backend::IoRequest* r) override { split->volume->PartDone(split, r->result); }
  };
  Volume* volume = nullptr;
  backend::IoRequest* parent = nullptr;
  std::shared_ptr<const Table> table;  // Keeps the segment table alive while parts are in flight.
  std::atomic<int> remaining{0};
  std::atomic<int> first_error{0};
  std::vector<Part> parts;  // Grows to the largest split seen, then reused.
};

Volume::Volume(std::string id, std::vector<Segment> segments, std::vector<Extent> extents,
               uint32_t block_size, bool supports_discard)
    : id_(std::move(id)),
      block_size_(block_size),
      supports_discard_(supports_discard),
      table_(std::make_shared<const Table>()) {
  Extend(std::move(segments), std::move(extents));
  for (int i = 0; i < 64; ++i) {
    splits_.push_back(std::make_unique<Split>());
    splits_.back()->volume = this;
    free_.push_back(splits_.back().get());
  }
}

Volume::~Volume() = default;

uint64_t Volume::SizeBytes() const { return table_.load()->size; }

std::vector<Extent> Volume::extents() const {
  std::lock_guard<std::mutex> lock(extents_mutex_);
  return extents_;
}

void Volume::Extend(std::vector<Segment> segments, std::vector<Extent> extents) {
  std::lock_guard<std::mutex> lock(extents_mutex_);
  auto next = std::make_shared<Table>(*table_.load());
  for (Segment& s : segments) {
    s.volume_offset = next->size;
    next->size += s.length;
    next->segments.push_back(s);
    if (std::find(next->devices.begin(), next->devices.end(), s.device) == next->devices.end()) {
      next->devices.push_back(s.device);
    }
  }
  extents_.insert(extents_.end(), extents.begin(), extents.end());
  table_.store(std::move(next));
}

Volume::Split* Volume::AcquireSplit() {
  std::lock_guard<std::mutex> lock(pool_mutex_);
  if (free_.empty()) {
    splits_.push_back(std::make_unique<Split>());
    splits_.back()->volume = this;
    return splits_.back().get();
  }
  Split* s = free_.back();
  free_.pop_back();
  return s;
}

void Volume::ReleaseSplit(Split* split) {
  split->table.reset();
  std::lock_guard<std::mutex> lock(pool_mutex_);
  free_.push_back(split);
}

void Volume::Submit(backend::IoRequest* request) {
  std::shared_ptr<const Table> table = table_.load();
  const uint64_t length = request->ByteLength();
  const bool flush = request->op == backend::IoOp::kFlush;
  if (!flush && (request->offset > table->size || length > table->size - request->offset)) {
    request->result = -EINVAL;
    request->completion->IoDone(request);
    return;
  }
  if ((!flush && length == 0) || (flush && table->devices.empty())) {
    request->result = 0;
    request->completion->IoDone(request);
    return;
  }
  Split* split = AcquireSplit();
  split->parent = request;
  split->first_error.store(0, std::memory_order_relaxed);

  size_t count = 0;
  if (flush) {
    count = table->devices.size();
    if (split->parts.size() < count) {
      split->parts.resize(count);
    }
    for (size_t i = 0; i < count; ++i) {
      backend::IoRequest& r = split->parts[i].request;
      r = backend::IoRequest{};
      r.op = backend::IoOp::kFlush;
      r.user = table->devices[i];
    }
  } else {
    // First segment containing the offset: the last one starting at or before it.
    const auto& segs = table->segments;
    auto it =
        std::upper_bound(segs.begin(), segs.end(), request->offset,
                         [](uint64_t off, const Segment& s) { return off < s.volume_offset; });
    size_t first = static_cast<size_t>(it - segs.begin()) - 1;
    uint64_t pos = request->offset;
    const uint64_t end = request->offset + length;
    for (size_t i = first; pos < end; ++i) {
      const Segment& s = segs[i];
      const uint64_t part_end = std::min(end, s.volume_offset + s.length);
      if (split->parts.size() <= count) {
        split->parts.resize(count + 1);
      }
      backend::IoRequest& r = split->parts[count++].request;
      r = backend::IoRequest{};
      r.op = request->op;
      r.offset = s.backend_offset + (pos - s.volume_offset);
      const uint64_t n = part_end - pos;
      const uint64_t within = pos - request->offset;
      switch (request->op) {
        case backend::IoOp::kRead:
          r.read_buffer = request->read_buffer.subspan(within, n);
          break;
        case backend::IoOp::kWrite:
          r.write_buffer = request->write_buffer.subspan(within, n);
          break;
        default:
          r.length = n;
          break;
      }
      r.user = s.device;
      pos = part_end;
    }
  }
  split->table = std::move(table);
  // One extra reference held by this loop, so a part completing inline cannot finish the split
  // before every part was submitted.
  split->remaining.store(static_cast<int>(count) + 1, std::memory_order_relaxed);
  // Completion pointers are set only now: growing `parts` above may have moved it.
  for (size_t i = 0; i < count; ++i) {
    split->parts[i].split = split;
    split->parts[i].request.completion = &split->parts[i];
  }
  for (size_t i = 0; i < count; ++i) {
    backend::IoRequest& r = split->parts[i].request;
    static_cast<backend::BlockDevice*>(r.user)->Submit(&r);
  }
  PartDone(split, 0);
}

void Volume::PartDone(Split* split, int result) {
  if (result != 0) {
    int expected = 0;
    split->first_error.compare_exchange_strong(expected, result);
  }
  if (split->remaining.fetch_sub(1, std::memory_order_acq_rel) != 1) {
    return;
  }
  backend::IoRequest* parent = split->parent;
  parent->result = split->first_error.load();
  ReleaseSplit(split);
  parent->completion->IoDone(parent);
}

}  // namespace vios::pool
