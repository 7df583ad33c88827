// Cache queries shared by the reconcilers (see caches.h).
#include "operator/caches.h"

namespace vios::op {

using nlohmann::json;

std::vector<json> InCluster(const kube::Informer& informer, const std::string& ns,
                            const std::string& cluster) {
  std::vector<json> out;
  for (json& obj : informer.List()) {
    const json& md = obj["metadata"];
    if (md.value("namespace", "") != ns) continue;
    if (!obj.contains("spec") || !obj["spec"].is_object()) continue;
    if (obj["spec"].value("cluster", "") != cluster) continue;
    out.push_back(std::move(obj));
  }
  return out;
}

json WithTypeMeta(json obj, const std::string& api_version, const std::string& kind) {
  if (!obj.contains("apiVersion")) obj["apiVersion"] = api_version;
  if (!obj.contains("kind")) obj["kind"] = kind;
  return obj;
}

}  // namespace vios::op
