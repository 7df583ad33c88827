// RateLimitingQueue implementation.
#include "common/kube/work_queue.h"

#include <algorithm>
#include <vector>

namespace vios::kube {

RateLimitingQueue::RateLimitingQueue(RateLimiterOptions options, const Clock* clock)
    : options_(options), clock_(clock) {}

RateLimitingQueue::~RateLimitingQueue() { ShutDown(); }

void RateLimitingQueue::AddLocked(const std::string& key) {
  if (shutting_down_ || dirty_.count(key) != 0) return;
  dirty_.insert(key);
  if (processing_.count(key) != 0) return;  // Done re-queues it
  queue_.push_back(key);
  cv_.notify_one();
}

void RateLimitingQueue::Add(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  AddLocked(key);
}

void RateLimitingQueue::AddAfter(const std::string& key, Clock::Duration delay) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shutting_down_) return;
  if (delay <= Clock::Duration::zero()) {
    AddLocked(key);
    return;
  }
  Clock::TimePoint ready = clock_->Now() + delay;
  auto [it, inserted] = waiting_.emplace(key, ready);
  if (!inserted && ready < it->second) it->second = ready;
  cv_.notify_all();  // a Get may need to wait for an earlier deadline now
}

Clock::Duration RateLimitingQueue::BackoffLocked(int failures) const {
  auto delay = std::chrono::duration_cast<Clock::Duration>(options_.base_delay);
  const auto max = std::chrono::duration_cast<Clock::Duration>(options_.max_delay);
  for (int i = 0; i < failures && delay < max; ++i) delay *= 2;
  return std::min(delay, max);
}

void RateLimitingQueue::AddRateLimited(const std::string& key) {
  Clock::Duration delay;
  {
    std::lock_guard<std::mutex> lock(mu_);
    delay = BackoffLocked(failures_[key]++);
  }
  AddAfter(key, delay);
}

Clock::Duration RateLimitingQueue::NextBackoff(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = failures_.find(key);
  return BackoffLocked(it == failures_.end() ? 0 : it->second);
}

void RateLimitingQueue::Forget(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  failures_.erase(key);
}

int RateLimitingQueue::NumRequeues(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

void RateLimitingQueue::PromoteReadyLocked() {
  if (waiting_.empty()) return;
  Clock::TimePoint now = clock_->Now();
  std::vector<std::pair<Clock::TimePoint, std::string>> ready;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (it->second <= now) {
      ready.emplace_back(it->second, it->first);
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  std::sort(ready.begin(), ready.end());  // earliest deadline first
  for (const auto& [when, key] : ready) AddLocked(key);
}

std::optional<std::string> RateLimitingQueue::Get() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    PromoteReadyLocked();
    if (!queue_.empty()) break;
    if (shutting_down_) return std::nullopt;
    if (waiting_.empty()) {
      cv_.wait(lock);
    } else {
      Clock::TimePoint next = Clock::TimePoint::max();
      for (const auto& [key, when] : waiting_) next = std::min(next, when);
      clock_->WaitUntil(cv_, lock, next);
    }
  }
  std::string key = std::move(queue_.front());
  queue_.pop_front();
  processing_.insert(key);
  dirty_.erase(key);
  return key;
}

std::optional<std::string> RateLimitingQueue::TryGet() {
  std::lock_guard<std::mutex> lock(mu_);
  PromoteReadyLocked();
  if (queue_.empty()) return std::nullopt;
  std::string key = std::move(queue_.front());
  queue_.pop_front();
  processing_.insert(key);
  dirty_.erase(key);
  return key;
}

void RateLimitingQueue::Done(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  processing_.erase(key);
  if (dirty_.count(key) != 0) {
    queue_.push_back(key);
    cv_.notify_one();
  }
}

void RateLimitingQueue::ShutDown() {
  std::lock_guard<std::mutex> lock(mu_);
  shutting_down_ = true;
  waiting_.clear();
  cv_.notify_all();
}

bool RateLimitingQueue::ShuttingDown() const {
  std::lock_guard<std::mutex> lock(mu_);
  return shutting_down_;
}

size_t RateLimitingQueue::Len() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

size_t RateLimitingQueue::Waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_.size();
}

size_t RateLimitingQueue::Processing() const {
  std::lock_guard<std::mutex> lock(mu_);
  return processing_.size();
}

}  // namespace vios::kube
