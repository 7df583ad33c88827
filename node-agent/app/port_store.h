// PortStore: the virtual ports created through the local API, kept under the state directory so
// that an agent restarted while the API server (or the CSI node plugin) is away comes back serving
// the same pods (DESIGN.md §5, "Local storage"). One JSON file, <state_dir>/ports.json, mode 0600
// (it holds CHAP secrets), replaced atomically on every change.
//
//   PortStore store(state_dir);
//   std::vector<PortRequest> saved = store.Load(&error);   // a corrupt file is set aside
//   store.Save(requests, &error);
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "node-agent/api/port_manager.h"

namespace vios::agent {

nlohmann::json PortRequestToJson(const PortRequest& request);
// PortRequestFromJson throws std::runtime_error naming the bad field.
PortRequest PortRequestFromJson(const nlohmann::json& j);

class PortStore {
 public:
  static constexpr const char* kFileName = "ports.json";
  explicit PortStore(std::string state_dir) : path_(std::move(state_dir) + "/" + kFileName) {}

  // Load returns the saved requests; on a corrupt file it returns none, moves the file to
  // <path>.corrupt-<unix time> and says so in *error.
  std::vector<PortRequest> Load(std::string* error) const;
  bool Save(const std::vector<PortRequest>& requests, std::string* error) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace vios::agent
