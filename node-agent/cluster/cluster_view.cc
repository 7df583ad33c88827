// ClusterView construction from API objects and the view diff (cluster_view.h).
#include "node-agent/cluster/cluster_view.h"

#include <set>

#include "common/util/quantity.h"

namespace vios::agent::cluster {
namespace {

using nlohmann::json;

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return (it != j.end() && it->is_string()) ? it->get<std::string>() : std::string();
}

const json& Obj(const json& j, const char* key) {
  static const json kEmpty = json::object();
  auto it = j.find(key);
  return (it != j.end() && it->is_object()) ? *it : kEmpty;
}

const json& Arr(const json& j, const char* key) {
  static const json kEmpty = json::array();
  auto it = j.find(key);
  return (it != j.end() && it->is_array()) ? *it : kEmpty;
}

uint64_t U64(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) {
    return 0;
  }
  if (it->is_number_unsigned()) {
    return it->get<uint64_t>();
  }
  if (it->is_number_integer() && it->get<int64_t>() >= 0) {
    return static_cast<uint64_t>(it->get<int64_t>());
  }
  return 0;
}

std::optional<BackendConfig> ParseBackend(const json& b, const std::string& path,
                                          std::vector<std::string>* errors) {
  BackendConfig out;
  out.name = Str(b, "name");
  if (b.contains("file")) {
    const json& f = Obj(b, "file");
    auto size = util::ParseByteQuantity(Str(f, "size"));
    if (!size) {
      errors->push_back(path + ".file.size: not a byte quantity: " + Str(f, "size"));
      return std::nullopt;
    }
    // The spec declares the size: the agent creates (sparse) or extends the file as needed.
    out.file = FileBackendConfig{.path = Str(f, "path"), .size = *size, .create = true};
  } else if (b.contains("iscsi")) {
    const json& i = Obj(b, "iscsi");
    // CHAP credentials live in the Secret chapSecretRef names; resolving it is the data path's
    // business when it logs in, not part of the view.
    IscsiBackendConfig iscsi;
    iscsi.portal = Str(i, "portal");
    iscsi.iqn = Str(i, "iqn");
    iscsi.lun = static_cast<uint32_t>(U64(i, "lun"));
    out.iscsi = std::move(iscsi);
  } else if (b.contains("device")) {
    out.device = DeviceBackendConfig{.path = Str(Obj(b, "device"), "path")};
  } else {
    errors->push_back(path + ": none of file, iscsi, device is set");
    return std::nullopt;
  }
  return out;
}

std::string MemberSubject(const std::string& name) { return "member/" + name; }
std::string VolumeSubject(const std::string& name) { return "volume/" + name; }

events::Message Msg(events::MessageType type, const std::string& source, std::string subject,
                    std::string text, std::map<std::string, std::string> attrs = {}) {
  events::Message m;
  m.type = type;
  m.source = source;
  m.subject = std::move(subject);
  m.text = std::move(text);
  m.attributes = std::move(attrs);
  return m;
}

}  // namespace

const char* OriginName(ClusterView::Origin origin) {
  switch (origin) {
    case ClusterView::Origin::kEmpty:
      return "empty";
    case ClusterView::Origin::kApiServer:
      return "api-server";
    case ClusterView::Origin::kLocalCopy:
      return "local-copy";
  }
  return "unknown";
}

VolumeConfig ServedVolume::ToVolumeConfig() const {
  VolumeConfig v;
  v.name = name;
  v.pool = pool;
  v.size = size;
  v.extents = extents;
  return v;
}

ClusterConfig ParseClusterConfig(const json& obj, std::vector<std::string>* errors) {
  ClusterConfig c;
  const json& meta = Obj(obj, "metadata");
  c.name = Str(meta, "name");
  c.ns = Str(meta, "namespace");
  c.resource_version = Str(meta, "resourceVersion");
  c.generation = static_cast<int64_t>(U64(meta, "generation"));
  c.spec = Obj(obj, "spec");
  const json& pools = Arr(c.spec, "pools");
  for (size_t i = 0; i < pools.size(); ++i) {
    const std::string path = "spec.pools[" + std::to_string(i) + "]";
    const json& p = pools[i];
    PoolConfig pool;
    pool.name = Str(p, "name");
    if (p.contains("extentSize")) {
      auto es = util::ParseByteQuantity(Str(p, "extentSize"));
      if (!es) {
        errors->push_back(path + ".extentSize: not a byte quantity: " + Str(p, "extentSize"));
        continue;
      }
      pool.extent_size = *es;
    }
    const json& backends = Arr(p, "backends");
    for (size_t k = 0; k < backends.size(); ++k) {
      auto b = ParseBackend(backends[k], path + ".backends[" + std::to_string(k) + "]", errors);
      if (b) {
        pool.backends.push_back(std::move(*b));
      }
    }
    c.pools.push_back(std::move(pool));
  }
  return c;
}

PeerInfo ParsePeer(const json& member) {
  PeerInfo p;
  p.name = Str(Obj(member, "metadata"), "name");
  const json& spec = Obj(member, "spec");
  const json& status = Obj(member, "status");
  p.node = Str(spec, "nodeName");
  p.peer_address = Str(status, "peerAddress");
  p.state = Str(status, "state");
  p.version = Str(status, "version");
  return p;
}

bool ServesVolume(const json& volume, const std::string& cluster, const std::string& self) {
  if (Str(Obj(volume, "spec"), "cluster") != cluster) {
    return false;
  }
  for (const json& a : Arr(Obj(volume, "status"), "attachments")) {
    const std::string agent = Str(a, "agent");
    if (agent == self || (agent.empty() && Str(a, "node") == self)) {
      return true;
    }
  }
  return false;
}

ServedVolume ParseServedVolume(const json& volume, const std::string& self) {
  ServedVolume v;
  v.name = Str(Obj(volume, "metadata"), "name");
  const json& spec = Obj(volume, "spec");
  const json& status = Obj(volume, "status");
  v.pool = Str(spec, "pool");
  v.size = util::ParseByteQuantity(Str(spec, "size")).value_or(0);
  for (const json& e : Arr(spec, "extents")) {
    v.extents.push_back(ExtentConfig{
        .backend = Str(e, "backend"), .offset = U64(e, "offset"), .length = U64(e, "length")});
  }
  for (const json& a : Arr(status, "attachments")) {
    const std::string agent = Str(a, "agent");
    if (agent == self || (agent.empty() && Str(a, "node") == self)) {
      v.virtual_port_iqns.push_back(Str(a, "virtualPortIQN"));
    }
  }
  auto it = status.find("reservation");
  v.reservation = it != status.end() ? *it : json();
  return v;
}

ClusterView BuildView(const json& cluster, const std::vector<json>& members,
                      const std::vector<json>& volumes, const std::string& cluster_name,
                      const std::string& self, ClusterView::Origin origin) {
  ClusterView view;
  view.origin = origin;
  if (cluster.is_object()) {
    view.config = ParseClusterConfig(cluster, &view.config_errors);
  }
  for (const json& m : members) {
    if (Str(Obj(m, "spec"), "cluster") != cluster_name) {
      continue;
    }
    PeerInfo p = ParsePeer(m);
    if (p.name == self) {
      view.self_state = p.state;
    } else if (!p.name.empty()) {
      view.peers[p.name] = std::move(p);
    }
  }
  for (const json& v : volumes) {
    if (ServesVolume(v, cluster_name, self)) {
      ServedVolume sv = ParseServedVolume(v, self);
      view.volumes[sv.name] = std::move(sv);
    }
  }
  return view;
}

std::vector<events::Message> DiffViews(const ClusterView& before, const ClusterView& after,
                                       const std::string& source) {
  using events::MessageType;
  std::vector<events::Message> out;
  // Configuration: compare what the agent applies (pools and the rest of the spec), not the
  // resourceVersion, so a status-only update of the VIOSCluster is not a config change.
  const bool had = before.config.has_value();
  const bool has = after.config.has_value();
  if (had != has || (has && (before.config->pools != after.config->pools ||
                             before.config->spec != after.config->spec))) {
    std::map<std::string, std::string> attrs;
    if (has) {
      attrs["generation"] = std::to_string(after.config->generation);
      attrs["resourceVersion"] = after.config->resource_version;
    }
    attrs["origin"] = OriginName(after.origin);
    out.push_back(Msg(MessageType::kConfigChanged, source,
                      "cluster/" + (has ? after.config->name : before.config->name),
                      has ? "cluster configuration changed" : "cluster configuration removed",
                      std::move(attrs)));
  }
  for (const auto& [name, peer] : after.peers) {
    auto it = before.peers.find(name);
    std::map<std::string, std::string> attrs = {{"peerAddress", peer.peer_address},
                                                {"state", peer.state}};
    if (it == before.peers.end()) {
      out.push_back(Msg(MessageType::kMemberJoined, source, MemberSubject(name),
                        "member " + name + " joined", attrs));
      // A member first seen already Down is worth its own message.
      if (peer.state == "Down") {
        out.push_back(Msg(MessageType::kMemberDown, source, MemberSubject(name),
                          "member " + name + " is Down", attrs));
      }
      continue;
    }
    if (it->second.state != peer.state) {
      if (peer.state == "Down") {
        out.push_back(Msg(MessageType::kMemberDown, source, MemberSubject(name),
                          "member " + name + " is Down", attrs));
      } else if (peer.state == "Up") {
        out.push_back(Msg(MessageType::kMemberUp, source, MemberSubject(name),
                          "member " + name + " is Up", attrs));
      }
    }
  }
  for (const auto& [name, peer] : before.peers) {
    if (!after.peers.contains(name)) {
      out.push_back(Msg(MessageType::kMemberLeft, source, MemberSubject(name),
                        "member " + name + " left", {{"peerAddress", peer.peer_address}}));
    }
  }
  for (const auto& [name, vol] : after.volumes) {
    auto it = before.volumes.find(name);
    if (it == before.volumes.end() || it->second.virtual_port_iqns != vol.virtual_port_iqns ||
        it->second.extents != vol.extents) {
      std::string ports;
      for (const auto& iqn : vol.virtual_port_iqns) {
        ports += (ports.empty() ? "" : ",") + iqn;
      }
      out.push_back(Msg(MessageType::kVolumeAttached, source, VolumeSubject(name),
                        "volume " + name + " served by this agent",
                        {{"pool", vol.pool},
                         {"extents", std::to_string(vol.extents.size())},
                         {"ports", ports},
                         {"update", it == before.volumes.end() ? "false" : "true"}}));
    }
    if (it != before.volumes.end() && it->second.reservation != vol.reservation) {
      out.push_back(Msg(MessageType::kReservationChanged, source, VolumeSubject(name),
                        "reservation of volume " + name + " changed"));
    }
  }
  for (const auto& [name, vol] : before.volumes) {
    if (!after.volumes.contains(name)) {
      out.push_back(Msg(MessageType::kVolumeDetached, source, VolumeSubject(name),
                        "volume " + name + " no longer served by this agent",
                        {{"pool", vol.pool}}));
    }
  }
  return out;
}

json TrimObject(const json& obj) {
  json out = json::object();
  for (const char* k : {"apiVersion", "kind", "spec", "status"}) {
    if (obj.contains(k)) {
      out[k] = obj[k];
    }
  }
  json meta = json::object();
  const json& m = Obj(obj, "metadata");
  for (const char* k : {"name", "namespace", "labels", "generation", "resourceVersion", "uid"}) {
    if (m.contains(k)) {
      meta[k] = m[k];
    }
  }
  out["metadata"] = std::move(meta);
  return out;
}

}  // namespace vios::agent::cluster
