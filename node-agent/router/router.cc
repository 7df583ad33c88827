// Router: path choice, reroute state, retry and hold of path failures (router.h, README.md).
#include "node-agent/router/router.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <string_view>

#include "common/log/log.h"

namespace vios::router {
namespace {

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

uint64_t Ns(std::chrono::milliseconds ms) { return static_cast<uint64_t>(ms.count()) * 1000000ull; }

backend::IoCounters::Kind KindOf(backend::IoOp op) {
  switch (op) {
    case backend::IoOp::kRead:
      return backend::IoCounters::Kind::kRead;
    case backend::IoOp::kWrite:
      return backend::IoCounters::Kind::kWrite;
    default:
      return backend::IoCounters::Kind::kOther;
  }
}

}  // namespace

struct Router::Context final : backend::IoCompletion {
  Router* router = nullptr;
  backend::IoRequest inner;
  backend::IoRequest* outer = nullptr;
  Path* path = nullptr;
  std::shared_ptr<Path> path_ref;  // keeps a peer path alive while this request uses it
  unsigned attempts = 0;
  unsigned quick_retries = 0;  // retries since the last hold
  uint64_t start_ns = 0;
  uint64_t deadline_ns = 0;
  uint64_t next_try_ns = 0;
  // local_since_ns: start of an attempt on the local path, 0 otherwise. The watchdog swaps it to
  // 0 when the attempt outlives local_io_timeout; Done swapping it first means "in time".
  std::atomic<uint64_t> local_since_ns{0};
  Context* held_next = nullptr;
  void IoDone(backend::IoRequest* request) override {
    (void)request;
    router->Done(this);
  }
};

Router::Router(std::string name, std::unique_ptr<backend::BlockDevice> local,
               unsigned failure_threshold)
    : Router(std::move(name), std::move(local),
             RouterOptions{.health = HealthOptions{.io_failures_to_lose = failure_threshold}}) {}

Router::Router(std::string name, std::unique_ptr<backend::BlockDevice> local, RouterOptions options)
    : name_(std::move(name)), local_(std::move(local)), options_(std::move(options)) {
  StoreTimes();
  auto path = std::make_shared<LocalPath>(local_.get(), options_.health);
  local_path_ = path.get();
  paths_.push_back(std::move(path));
  local_path_->tracker().SetOnChange([this](PathHealth from, PathHealth to, const char* reason) {
    OnLocalHealth(from, to, reason);
  });
  for (int i = 0; i < 64; ++i) {
    contexts_.push_back(std::make_unique<Context>());
    contexts_.back()->router = this;
    free_.push_back(contexts_.back().get());
  }
  watchdog_ = std::thread([this] { Watchdog(); });
}

Router::~Router() {
  StopProber();
  {
    std::lock_guard<std::mutex> lock(watchdog_mutex_);
    stop_ = true;
  }
  watchdog_cv_.notify_all();
  watchdog_.join();
  // Nothing may wait forever: held requests fail now.
  Context* held = nullptr;
  {
    std::lock_guard<std::mutex> lock(held_mutex_);
    held = held_head_;
    held_head_ = held_tail_ = nullptr;
  }
  while (held != nullptr) {
    Context* next = held->held_next;
    Finish(held, -kNoPathErrno);
    held = next;
  }
  local_path_->tracker().SetOnChange(nullptr);
}

void Router::StoreTimes() {
  io_timeout_ns_.store(Ns(options_.io_timeout));
  local_io_timeout_ns_.store(Ns(options_.local_io_timeout));
  retry_interval_ns_.store(std::max<uint64_t>(1000000, Ns(options_.retry_interval)));
}

void Router::SetOptions(RouterOptions options) {
  std::lock_guard<std::mutex> lock(options_mutex_);
  options.health = options_.health;
  options_ = std::move(options);
  StoreTimes();
}

void Router::StartProber(ProberOptions options) {
  if (prober_) {
    return;
  }
  prober_ = std::make_unique<PathProber>(local_.get(), &local_path_->tracker(), options);
  prober_->Start();
  probing_.store(true);
}

void Router::SetProbing(std::chrono::milliseconds interval, unsigned lost_after) {
  local_path_->tracker().SetLostAfter(lost_after);
  if (!prober_) {
    ProberOptions options;
    options.interval = interval;
    StartProber(options);
    return;
  }
  prober_->SetInterval(interval);
  if (!probing_.load()) {
    prober_->Start();
    probing_.store(true);
  }
}

void Router::SetIoTimeout(std::chrono::milliseconds io_timeout) {
  std::lock_guard<std::mutex> lock(options_mutex_);
  options_.io_timeout = io_timeout;
  StoreTimes();
}

void Router::StopProber() {
  if (prober_) {
    prober_->Stop();
    probing_.store(false);
  }
}

bool Router::AddPath(std::unique_ptr<Path> path) {
  std::unique_lock<std::shared_mutex> lock(paths_mutex_);
  for (const auto& p : paths_) {
    if (p->Name() == path->Name()) {
      return false;
    }
  }
  VIOS_LOG(kInfo, "path added").Field("backend", name_).Field("path", path->Name());
  paths_.push_back(std::shared_ptr<Path>(std::move(path)));
  return true;
}

bool Router::RemovePath(const std::string& name) {
  std::unique_lock<std::shared_mutex> lock(paths_mutex_);
  for (size_t i = 1; i < paths_.size(); ++i) {
    if (paths_[i]->Name() == name) {
      retired_.push_back(std::move(paths_[i]));
      paths_.erase(paths_.begin() + static_cast<std::ptrdiff_t>(i));
      VIOS_LOG(kInfo, "path removed").Field("backend", name_).Field("path", name);
      return true;
    }
  }
  return false;
}

std::vector<Path*> Router::Paths() const {
  std::shared_lock<std::shared_mutex> lock(paths_mutex_);
  std::vector<Path*> out;
  for (const auto& p : paths_) {
    out.push_back(p.get());
  }
  return out;
}

std::vector<std::shared_ptr<Path>> Router::SharedPaths() const {
  std::shared_lock<std::shared_mutex> lock(paths_mutex_);
  return paths_;
}

Path* Router::ChoosePath(const Path* exclude) const {
  std::shared_ptr<Path> ref;
  return Choose(exclude, &ref);
}

Path* Router::Choose(const Path* exclude, std::shared_ptr<Path>* ref) const {
  if (!rerouting_.load(std::memory_order_acquire) && exclude != local_path_ &&
      local_path_->Health() != PathHealth::kLost) {
    return local_path_;  // The steady state: no lock, no reference count.
  }
  std::shared_lock<std::shared_mutex> lock(paths_mutex_);
  const size_t peers = paths_.size() - 1;
  if (peers == 0) {
    return nullptr;
  }
  // Least outstanding among Healthy peers, else among Degraded ones; the scan starts at a
  // rotating index so equals take turns.
  const size_t start = static_cast<size_t>(round_robin_.fetch_add(1, std::memory_order_relaxed));
  for (PathHealth wanted : {PathHealth::kHealthy, PathHealth::kDegraded}) {
    const std::shared_ptr<Path>* best = nullptr;
    int64_t best_load = 0;
    for (size_t k = 0; k < peers; ++k) {
      const std::shared_ptr<Path>& p = paths_[1 + (start + k) % peers];
      if (p.get() == exclude || p->Health() != wanted) {
        continue;
      }
      const int64_t load = p->outstanding().load(std::memory_order_relaxed);
      if (best == nullptr || load < best_load) {
        best = &p;
        best_load = load;
      }
    }
    if (best != nullptr) {
      *ref = *best;
      return best->get();
    }
  }
  return nullptr;
}

Router::Context* Router::AcquireContext() {
  std::lock_guard<std::mutex> lock(pool_mutex_);
  if (free_.empty()) {
    contexts_.push_back(std::make_unique<Context>());
    contexts_.back()->router = this;
    return contexts_.back().get();
  }
  Context* ctx = free_.back();
  free_.pop_back();
  return ctx;
}

void Router::ReleaseContext(Context* ctx) {
  std::lock_guard<std::mutex> lock(pool_mutex_);
  free_.push_back(ctx);
}

void Router::Submit(backend::IoRequest* request) {
  Context* ctx = AcquireContext();
  ctx->outer = request;
  ctx->attempts = 0;
  ctx->quick_retries = 0;
  ctx->inner.op = request->op;
  ctx->inner.offset = request->offset;
  ctx->inner.length = request->length;
  ctx->inner.read_buffer = request->read_buffer;
  ctx->inner.write_buffer = request->write_buffer;
  ctx->inner.completion = ctx;
  ctx->deadline_ns = NowNs() + io_timeout_ns_.load(std::memory_order_relaxed);
  std::shared_ptr<Path> ref;
  Path* path = Choose(nullptr, &ref);
  if (path == nullptr) {
    Hold(ctx);
    return;
  }
  Dispatch(ctx, path, std::move(ref));
}

void Router::Dispatch(Context* ctx, Path* path, std::shared_ptr<Path> ref) {
  ctx->path = path;
  ctx->path_ref = std::move(ref);
  ++ctx->attempts;
  ctx->inner.result = 0;
  ctx->start_ns = NowNs();
  path->outstanding().fetch_add(1, std::memory_order_relaxed);
  if (path == local_path_) {
    ctx->local_since_ns.store(ctx->start_ns, std::memory_order_release);
  }
  path->Device()->Submit(&ctx->inner);
}

void Router::Done(Context* ctx) {
  const int result = ctx->inner.result;
  Path* path = ctx->path;
  bool timed_out = false;
  if (path == local_path_) {
    timed_out = ctx->local_since_ns.exchange(0, std::memory_order_acq_rel) == 0;
  }
  path->outstanding().fetch_sub(1, std::memory_order_relaxed);
  path->counters().Record(KindOf(ctx->inner.op), ctx->inner.ByteLength(), NowNs() - ctx->start_ns,
                          result == 0);
  // The late success of an attempt that hung proves little about the path; the watchdog
  // already reported its timeout.
  if (!(timed_out && result == 0)) {
    path->ReportResult(result);
  }
  ctx->path_ref.reset();
  if (result == 0 || !IsPathError(result)) {
    Finish(ctx, result);
    return;
  }
  // A path error: the backend never acknowledged the request (README.md: why a retry is safe).
  retries_.fetch_add(1, std::memory_order_relaxed);
  if (NowNs() >= ctx->deadline_ns) {
    no_path_failures_.fetch_add(1, std::memory_order_relaxed);
    Finish(ctx, -kNoPathErrno);
    return;
  }
  std::shared_ptr<Path> ref;
  Path* other = Choose(path, &ref);
  if (other != nullptr && ctx->quick_retries < 4) {
    ++ctx->quick_retries;
    VIOS_LOG(kDebug, "retrying I/O on another path")
        .Field("backend", name_)
        .Field("failed", path->Name())
        .Field("next", other->Name())
        .Field("errno", -result);
    Dispatch(ctx, other, std::move(ref));
    return;
  }
  Hold(ctx);
}

void Router::Finish(Context* ctx, int result) {
  backend::IoRequest* outer = ctx->outer;
  outer->result = result;
  ReleaseContext(ctx);
  outer->completion->IoDone(outer);
}

void Router::Hold(Context* ctx) {
  ctx->next_try_ns = NowNs() + retry_interval_ns_.load(std::memory_order_relaxed);
  ctx->held_next = nullptr;
  {
    std::lock_guard<std::mutex> lock(held_mutex_);
    if (held_tail_ != nullptr) {
      held_tail_->held_next = ctx;
    } else {
      held_head_ = ctx;
    }
    held_tail_ = ctx;
  }
  if (held_count_.fetch_add(1) == 0) {
    watchdog_cv_.notify_all();  // switch the watchdog to the short tick
  }
}

void Router::Emit(const RouterEvent& event) {
  std::function<void(const RouterEvent&)> on_event;
  {
    std::lock_guard<std::mutex> lock(options_mutex_);
    on_event = options_.on_event;
  }
  if (on_event) {
    on_event(event);
  }
}

void Router::OnLocalHealth(PathHealth from, PathHealth to, const char* reason) {
  ::vios::log::Line(to == PathHealth::kHealthy ? log::Level::kInfo : log::Level::kWarning,
                    "local path health changed", __FILE__, __LINE__)
      .Field("backend", name_)
      .Field("from", PathHealthName(from))
      .Field("to", PathHealthName(to))
      .Field("reason", reason);
  Emit({RouterEvent::Kind::kPathHealth, name_, "local", from, to, reason});
  // Level-based: decide from the tracker's current state, so transitions reported out of order
  // by racing threads still end in the right state.
  std::optional<RouterEvent> change;
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    const PathHealth now = local_path_->Health();
    const bool was = rerouting_.load();
    const uint64_t t = NowNs();
    if (!was && now == PathHealth::kLost) {
      rerouting_.store(true, std::memory_order_release);
      rerouting_since_ns_ = t;
      const std::string_view r(reason);
      (r == "io_error"     ? reroutes_io_error_
       : r == "io_timeout" ? reroutes_io_timeout_
       : r == "probe"      ? reroutes_probe_
                           : reroutes_other_)
          .fetch_add(1);
      change = RouterEvent{RouterEvent::Kind::kRerouteStarted, name_, "local", from, now, reason};
    } else if (was && now == PathHealth::kHealthy) {
      rerouting_.store(false, std::memory_order_release);
      rerouted_ns_ += t - rerouting_since_ns_;
      change = RouterEvent{RouterEvent::Kind::kRerouteEnded, name_, "local", from, now, reason};
    }
  }
  if (change) {
    VIOS_LOG(kWarning, change->kind == RouterEvent::Kind::kRerouteStarted ? "rerouting started"
                                                                          : "rerouting ended")
        .Field("backend", name_)
        .Field("reason", reason);
    Emit(*change);
    watchdog_cv_.notify_all();
  }
}

Router::Stats Router::GetStats() const {
  Stats s;
  s.reroutes_io_error = reroutes_io_error_.load();
  s.reroutes_io_timeout = reroutes_io_timeout_.load();
  s.reroutes_probe = reroutes_probe_.load();
  s.reroutes_other = reroutes_other_.load();
  s.retries = retries_.load();
  s.local_timeouts = local_timeouts_.load();
  s.held = held_count_.load();
  s.no_path_failures = no_path_failures_.load();
  std::lock_guard<std::mutex> lock(const_cast<std::mutex&>(state_mutex_));
  s.rerouted_ns = rerouted_ns_ + (rerouting_.load() ? NowNs() - rerouting_since_ns_ : 0);
  return s;
}

void Router::CheckLocalTimeouts(uint64_t now) {
  const uint64_t limit = local_io_timeout_ns_.load(std::memory_order_relaxed);
  unsigned expired = 0;
  {
    std::lock_guard<std::mutex> lock(pool_mutex_);
    for (const auto& ctx : contexts_) {
      uint64_t since = ctx->local_since_ns.load(std::memory_order_acquire);
      if (since != 0 && now > since + limit &&
          ctx->local_since_ns.compare_exchange_strong(since, 0)) {
        ++expired;
      }
    }
  }
  if (expired == 0) {
    return;
  }
  local_timeouts_.fetch_add(expired);
  VIOS_LOG(kWarning, "local I/O timed out")
      .Field("backend", name_)
      .Field("requests", expired)
      .Field("timeout_ms", limit / 1000000);
  local_path_->tracker().OnIoTimeout();
  std::function<void()> stalled;
  {
    std::lock_guard<std::mutex> lock(options_mutex_);
    stalled = options_.local_stalled;
  }
  if (stalled) {
    stalled();
  }
}

void Router::RunHeld(uint64_t now) {
  Context* list = nullptr;
  {
    std::lock_guard<std::mutex> lock(held_mutex_);
    list = held_head_;
    held_head_ = held_tail_ = nullptr;
  }
  while (list != nullptr) {
    Context* ctx = list;
    list = list->held_next;
    held_count_.fetch_sub(1);
    if (now >= ctx->deadline_ns) {
      no_path_failures_.fetch_add(1, std::memory_order_relaxed);
      VIOS_LOG(kError, "no path to the backend within the I/O timeout")
          .Field("backend", name_)
          .Field("timeout_ms", io_timeout_ns_.load() / 1000000);
      Finish(ctx, -kNoPathErrno);
      continue;
    }
    std::shared_ptr<Path> ref;
    Path* path = now >= ctx->next_try_ns ? Choose(nullptr, &ref) : nullptr;
    if (path == nullptr && now >= ctx->next_try_ns && !probing_.load()) {
      path = local_path_;  // No prober: trying the local path is how recovery is learnt.
    }
    if (path != nullptr) {
      ctx->quick_retries = 0;
      Dispatch(ctx, path, std::move(ref));
    } else {
      if (now >= ctx->next_try_ns) {
        ctx->next_try_ns = now + retry_interval_ns_.load(std::memory_order_relaxed);
      }
      ctx->held_next = nullptr;
      std::lock_guard<std::mutex> lock(held_mutex_);
      if (held_tail_ != nullptr) {
        held_tail_->held_next = ctx;
      } else {
        held_head_ = ctx;
      }
      held_tail_ = ctx;
      held_count_.fetch_add(1);
    }
  }
}

void Router::Watchdog() {
  std::unique_lock<std::mutex> lock(watchdog_mutex_);
  while (!stop_) {
    lock.unlock();
    const uint64_t now = NowNs();
    CheckLocalTimeouts(now);
    if (held_count_.load() != 0) {
      RunHeld(now);
    }
    {
      // Retired paths die here, never on a completion thread inside their own callbacks.
      std::unique_lock<std::shared_mutex> paths(paths_mutex_);
      std::erase_if(retired_, [](const std::shared_ptr<Path>& p) { return p.use_count() == 1; });
    }
    lock.lock();
    const auto tick = std::chrono::nanoseconds(
        held_count_.load() != 0 ? retry_interval_ns_.load()
                                : std::max<uint64_t>(1000000, local_io_timeout_ns_.load() / 5));
    watchdog_cv_.wait_for(lock, tick);
  }
}

}  // namespace vios::router
