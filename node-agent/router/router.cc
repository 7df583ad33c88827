// Router: path choice, per-path counters, retry of path failures on another path.
#include "node-agent/router/router.h"

#include <cerrno>
#include <chrono>

#include "common/log/log.h"

namespace vios::router {
namespace {

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

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

const char* PathHealthName(PathHealth health) {
  switch (health) {
    case PathHealth::kHealthy:
      return "Healthy";
    case PathHealth::kDegraded:
      return "Degraded";
    case PathHealth::kLost:
      return "Lost";
  }
  return "Unknown";
}

bool IsPathError(int result) {
  switch (-result) {
    case ENOTCONN:
    case ETIMEDOUT:
    case ECONNRESET:
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ESHUTDOWN:
    case EPIPE:
      return true;
    default:
      return false;
  }
}

void LocalPath::ReportResult(int result) {
  if (!IsPathError(result)) {
    if (consecutive_failures_.exchange(0) != 0) {
      health_.store(PathHealth::kHealthy);
    }
    return;
  }
  const unsigned failures = consecutive_failures_.fetch_add(1) + 1;
  health_.store(failures >= failure_threshold_ ? PathHealth::kLost : PathHealth::kDegraded);
}

struct Router::Context final : backend::IoCompletion {
  Router* router = nullptr;
  backend::IoRequest inner;
  backend::IoRequest* outer = nullptr;
  Path* path = nullptr;
  unsigned attempts = 0;
  uint64_t start_ns = 0;
  void IoDone(backend::IoRequest* request) override {
    (void)request;
    router->Done(this);
  }
};

Router::Router(std::string name, std::unique_ptr<backend::BlockDevice> local,
               unsigned failure_threshold)
    : name_(std::move(name)), local_(std::move(local)) {
  auto path = std::make_unique<LocalPath>(local_.get(), failure_threshold);
  local_path_ = path.get();
  paths_.push_back(std::move(path));
  for (int i = 0; i < 64; ++i) {
    contexts_.push_back(std::make_unique<Context>());
    contexts_.back()->router = this;
    free_.push_back(contexts_.back().get());
  }
}

Router::~Router() = default;

void Router::AddPath(std::unique_ptr<Path> path) {
  std::unique_lock<std::shared_mutex> lock(paths_mutex_);
  VIOS_LOG(kInfo, "path added").Field("backend", name_).Field("path", path->Name());
  paths_.push_back(std::move(path));
}

std::vector<Path*> Router::Paths() const {
  std::shared_lock<std::shared_mutex> lock(paths_mutex_);
  std::vector<Path*> out;
  for (const auto& p : paths_) {
    out.push_back(p.get());
  }
  return out;
}

Path* Router::ChoosePath(const Path* exclude) const {
  std::shared_lock<std::shared_mutex> lock(paths_mutex_);
  Path* degraded = nullptr;
  for (const auto& p : paths_) {
    if (p.get() == exclude) {
      continue;
    }
    const PathHealth h = p->Health();
    if (h == PathHealth::kHealthy) {
      return p.get();
    }
    if (h == PathHealth::kDegraded && degraded == nullptr) {
      degraded = p.get();
    }
  }
  if (degraded != nullptr || exclude != nullptr) {
    return degraded;  // With an exclusion (a retry), a Lost path is not worth another try.
  }
  return paths_.front().get();
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
  ctx->inner.op = request->op;
  ctx->inner.offset = request->offset;
  ctx->inner.length = request->length;
  ctx->inner.read_buffer = request->read_buffer;
  ctx->inner.write_buffer = request->write_buffer;
  ctx->inner.completion = ctx;
  Dispatch(ctx, ChoosePath());
}

void Router::Dispatch(Context* ctx, Path* path) {
  ctx->path = path;
  ++ctx->attempts;
  ctx->inner.result = 0;
  ctx->start_ns = NowNs();
  path->Device()->Submit(&ctx->inner);
}

void Router::Done(Context* ctx) {
  const int result = ctx->inner.result;
  Path* path = ctx->path;
  path->counters().Record(KindOf(ctx->inner.op), ctx->inner.ByteLength(), NowNs() - ctx->start_ns,
                          result == 0);
  path->ReportResult(result);
  if (result != 0 && IsPathError(result)) {
    // A retried request is idempotent (DESIGN.md §6): try another usable path once each.
    Path* other = ChoosePath(path);
    if (other != nullptr && ctx->attempts < Paths().size() + 1) {
      VIOS_LOG(kWarning, "retrying I/O on another path")
          .Field("backend", name_)
          .Field("failed", path->Name())
          .Field("next", other->Name())
          .Field("errno", -result);
      Dispatch(ctx, other);
      return;
    }
  }
  backend::IoRequest* outer = ctx->outer;
  outer->result = result;
  ReleaseContext(ctx);
  outer->completion->IoDone(outer);
}

}  // namespace vios::router
