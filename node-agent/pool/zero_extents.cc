// ZeroExtents: WriteZeroes per extent chunk, then Flush per backend, synchronously.
#include "node-agent/pool/zero_extents.h"

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>

namespace vios::pool {
namespace {

constexpr uint64_t kChunk = 1ull << 30;

class Waiter final : public backend::IoCompletion {
 public:
  void IoDone(backend::IoRequest* request) override {
    (void)request;
    std::lock_guard<std::mutex> lock(mutex_);
    done_ = true;
    cv_.notify_all();
  }
  int Run(backend::BlockDevice* device, backend::IoRequest* request) {
    done_ = false;
    request->completion = this;
    device->Submit(request);
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return done_; });
    return request->result;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
};

}  // namespace

bool ZeroExtents(const Pool& pool, const std::vector<Extent>& extents, std::string* error) {
  Waiter waiter;
  std::set<router::Router*> touched;
  for (const Extent& e : extents) {
    router::Router* r = pool.Backend(e.backend);
    if (r == nullptr) {
      *error = "unknown backend " + e.backend;
      return false;
    }
    touched.insert(r);
    for (uint64_t done = 0; done < e.length; done += kChunk) {
      backend::IoRequest request;
      request.op = backend::IoOp::kWriteZeroes;
      request.offset = e.offset + done;
      request.length = std::min(kChunk, e.length - done);
      const int result = waiter.Run(r, &request);
      if (result != 0) {
        *error = "zeroing " + e.backend + "@" + std::to_string(request.offset) + ": " +
                 std::strerror(-result);
        return false;
      }
    }
  }
  for (router::Router* r : touched) {
    backend::IoRequest request;
    request.op = backend::IoOp::kFlush;
    const int result = waiter.Run(r, &request);
    if (result != 0) {
      *error = "flushing " + r->name() + ": " + std::strerror(-result);
      return false;
    }
  }
  return true;
}

}  // namespace vios::pool
