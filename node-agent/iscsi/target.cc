// Target and TargetRegistry: configuration lookups and safe run-time removal.
#include "node-agent/iscsi/target.h"

#include <algorithm>

#include "common/log/log.h"

namespace vios::iscsi {
namespace {

// iSCSI names are compared in their normalized, lower-case form (RFC 7143 §4.2.7.1, RFC 3722).
std::string Normalize(std::string_view name) {
  std::string out(name);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

Target::Target(TargetConfig config, scsi::Device* device)
    : config_(std::move(config)), device_(device) {}

bool Target::InitiatorAllowed(std::string_view initiator) const {
  std::string name = Normalize(initiator);
  for (const auto& allowed : config_.allowed_initiators) {
    if (allowed == "*" || Normalize(allowed) == name) return true;
  }
  return false;
}

bool Target::OnPortalGroup(uint16_t tpgt) const {
  return config_.portal_groups.empty() ||
         std::find(config_.portal_groups.begin(), config_.portal_groups.end(), tpgt) !=
             config_.portal_groups.end();
}

bool Target::Attach(uint64_t connection_key, ConnectionHandle handle) {
  std::lock_guard<std::mutex> lock(mu_);
  if (removed_) return false;
  attached_[connection_key] = std::move(handle);
  return true;
}

bool Target::AbortTasksOf(std::string_view initiator_port, std::chrono::milliseconds timeout) {
  struct Wait {
    std::mutex mu;
    std::condition_variable cv;
    size_t pending = 0;
  };
  auto wait = std::make_shared<Wait>();
  std::vector<ConnectionHandle> victims;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, handle] : attached_) {
      if (handle.initiator_port == initiator_port) victims.push_back(handle);
    }
  }
  if (victims.empty()) return true;
  wait->pending = victims.size();
  for (const ConnectionHandle& victim : victims) {
    victim.abort(std::nullopt, [wait] {
      std::lock_guard<std::mutex> lock(wait->mu);
      if (--wait->pending == 0) wait->cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(wait->mu);
  bool done = wait->cv.wait_for(lock, timeout, [&] { return wait->pending == 0; });
  ::vios::log::Line(done ? log::Level::kInfo : log::Level::kWarning,
                    "iscsi tasks aborted for another nexus", __FILE__, __LINE__)
      .Field("target", config_.iqn)
      .Field("initiator_port", initiator_port)
      .Field("sessions", victims.size())
      .Field("complete", done);
  return done;
}

size_t Target::AbortOthers(uint64_t except_key, std::optional<uint64_t> lun,
                           const std::function<void()>& one_done) {
  std::vector<ConnectionHandle> others;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, handle] : attached_) {
      if (key != except_key) others.push_back(handle);
    }
  }
  for (const ConnectionHandle& other : others) other.abort(lun, one_done);
  return others.size();
}

void Target::CloseOthers(uint64_t except_key) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, handle] : attached_) {
    if (key != except_key) handle.close();
  }
}

void Target::Detach(uint64_t connection_key) {
  std::lock_guard<std::mutex> lock(mu_);
  attached_.erase(connection_key);
  if (attached_.empty()) idle_.notify_all();
}

void Target::Remove() {
  std::unique_lock<std::mutex> lock(mu_);
  removed_ = true;
  for (auto& [key, handle] : attached_) handle.close();
  idle_.wait(lock, [this] { return attached_.empty(); });
}

bool TargetRegistry::Add(std::shared_ptr<Target> target) {
  std::lock_guard<std::mutex> lock(mu_);
  return targets_.emplace(Normalize(target->iqn()), target).second;
}

std::shared_ptr<Target> TargetRegistry::Find(std::string_view iqn) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = targets_.find(Normalize(iqn));
  return it == targets_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Target>> TargetRegistry::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<Target>> out;
  for (const auto& [iqn, target] : targets_) out.push_back(target);
  return out;
}

bool TargetRegistry::Remove(std::string_view iqn) {
  std::shared_ptr<Target> target;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = targets_.find(Normalize(iqn));
    if (it == targets_.end()) return false;
    target = it->second;
    targets_.erase(it);
  }
  target->Remove();
  VIOS_LOG(kInfo, "iscsi target removed").Field("target", target->iqn());
  return true;
}

bool TargetRegistry::AbortTasksOf(std::string_view target_port, std::string_view initiator_port,
                                  std::chrono::milliseconds timeout) const {
  std::string_view iqn = target_port.substr(0, target_port.find(",t,"));
  std::shared_ptr<Target> target = Find(iqn);
  return target == nullptr || target->AbortTasksOf(initiator_port, timeout);
}

}  // namespace vios::iscsi
