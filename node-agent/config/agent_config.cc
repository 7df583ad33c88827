#include "node-agent/config/agent_config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string_view>

#include "common/util/quantity.h"

namespace vios::agent {

std::optional<std::chrono::milliseconds> ParseDuration(const std::string& text) {
  // ^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$, as the CRDs' validation pattern.
  double total_ms = 0;
  size_t i = 0;
  if (text.empty() || text.size() > 32) return std::nullopt;
  while (i < text.size()) {
    const size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    if (i == start) return std::nullopt;
    if (i < text.size() && text[i] == '.') {
      ++i;
      const size_t frac = i;
      while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
      if (i == frac) return std::nullopt;
    }
    const double number = std::stod(text.substr(start, i - start));
    double unit_ms;
    if (text.compare(i, 2, "ms") == 0) {
      unit_ms = 1;
      i += 2;
    } else if (i < text.size() && text[i] == 's') {
      unit_ms = 1000;
      ++i;
    } else if (i < text.size() && text[i] == 'm') {
      unit_ms = 60000;
      ++i;
    } else if (i < text.size() && text[i] == 'h') {
      unit_ms = 3600000;
      ++i;
    } else {
      return std::nullopt;
    }
    total_ms += number * unit_ms;
  }
  if (total_ms > 1e12) return std::nullopt;
  return std::chrono::milliseconds(static_cast<int64_t>(total_ms + 0.5));
}

namespace {

// Field walks one YAML mapping, remembers the path for errors, and rejects unknown keys so that a
// misspelt option is an error instead of a silently ignored line.
class Field {
 public:
  Field(YAML::Node node, std::string path) : node_(std::move(node)), path_(std::move(path)) {
    if (node_ && !node_.IsNull() && !node_.IsMap()) Fail(path_, "must be a mapping");
  }

  [[noreturn]] static void Fail(const std::string& path, const std::string& what) {
    throw ConfigError(path + ": " + what);
  }

  std::string Path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  YAML::Node Get(const std::string& key) {
    seen_.insert(key);
    return node_ ? node_[key] : YAML::Node();
  }

  bool Has(const std::string& key) {
    YAML::Node value = Get(key);
    return value && !value.IsNull();
  }

  std::string String(const std::string& key, bool required, std::string fallback = "") {
    YAML::Node value = Get(key);
    if (!value || value.IsNull()) {
      if (required) Fail(Path(key), "is required");
      return fallback;
    }
    if (!value.IsScalar()) Fail(Path(key), "must be a string");
    return value.Scalar();
  }

  uint64_t Bytes(const std::string& key, bool required, uint64_t fallback = 0) {
    std::string text = String(key, required);
    if (text.empty()) return fallback;
    auto bytes = util::ParseByteQuantity(text);
    if (!bytes) Fail(Path(key), "'" + text + "' is not a byte quantity (e.g. 4096, 64Mi, 10Gi)");
    return *bytes;
  }

  uint64_t Unsigned(const std::string& key, uint64_t fallback, uint64_t max) {
    std::string text = String(key, false);
    if (text.empty()) return fallback;
    uint64_t value = 0;
    std::istringstream in(text);
    if (!(in >> value) || !in.eof() || text[0] == '-') {
      Fail(Path(key), "'" + text + "' is not a non-negative integer");
    }
    if (value > max) Fail(Path(key), "must be at most " + std::to_string(max));
    return value;
  }

  bool Bool(const std::string& key, bool fallback) {
    YAML::Node value = Get(key);
    if (!value || value.IsNull()) return fallback;
    if (!value.IsScalar()) Fail(Path(key), "must be true or false");
    const std::string& s = value.Scalar();
    if (s == "true") return true;
    if (s == "false") return false;
    Fail(Path(key), "must be true or false, not '" + s + "'");
  }

  std::vector<std::string> Strings(const std::string& key) {
    YAML::Node value = Get(key);
    std::vector<std::string> out;
    if (!value || value.IsNull()) return out;
    if (!value.IsSequence()) Fail(Path(key), "must be a list of strings");
    for (size_t i = 0; i < value.size(); ++i) {
      if (!value[i].IsScalar()) Fail(Path(key) + "[" + std::to_string(i) + "]", "must be a string");
      out.push_back(value[i].Scalar());
    }
    return out;
  }

  // Items calls fn(Field, index) for each mapping in the list at key.
  template <typename Fn>
  void Items(const std::string& key, Fn fn) {
    YAML::Node value = Get(key);
    if (!value || value.IsNull()) return;
    if (!value.IsSequence()) Fail(Path(key), "must be a list");
    for (size_t i = 0; i < value.size(); ++i) {
      Field item(value[i], Path(key) + "[" + std::to_string(i) + "]");
      fn(item);
      item.RejectUnknown();
    }
  }

  Field Child(const std::string& key) { return Field(Get(key), Path(key)); }

  void RejectUnknown() const {
    if (!node_ || !node_.IsMap()) return;
    for (const auto& entry : node_) {
      std::string key = entry.first.Scalar();
      if (!seen_.count(key)) Fail(Path(key), "unknown field");
    }
  }

 private:
  YAML::Node node_;
  std::string path_;
  std::set<std::string> seen_;
};

std::optional<ChapCredentials> ParseChap(Field& parent, const std::string& key) {
  if (!parent.Has(key)) return std::nullopt;
  Field chap = parent.Child(key);
  ChapCredentials creds{chap.String("user", true), chap.String("secret", true)};
  // RFC 7143 §12.1.3 asks for secrets of at least 12 bytes; shorter ones are trivially guessed.
  if (creds.secret.size() < 12 || creds.secret.size() > 255) {
    Field::Fail(chap.Path("secret"), "must be 12 to 255 characters long");
  }
  chap.RejectUnknown();
  return creds;
}

BackendConfig ParseBackend(Field& f) {
  BackendConfig b;
  b.name = f.String("name", true);
  int kinds = 0;
  if (f.Has("file")) {
    ++kinds;
    Field file = f.Child("file");
    b.file = FileBackendConfig{file.String("path", true), file.Bytes("size", false),
                               file.Bool("create", false)};
    if (b.file->create && b.file->size == 0)
      Field::Fail(file.Path("size"), "is required with create");
    file.RejectUnknown();
  }
  if (f.Has("iscsi")) {
    ++kinds;
    Field iscsi = f.Child("iscsi");
    IscsiBackendConfig c;
    c.portal = iscsi.String("portal", true);
    c.iqn = iscsi.String("iqn", true);
    c.lun = static_cast<uint32_t>(iscsi.Unsigned("lun", 0, 16383));
    c.initiator_name = iscsi.String("initiatorName", false);
    c.chap = ParseChap(iscsi, "chap");
    iscsi.RejectUnknown();
    b.iscsi = std::move(c);
  }
  if (f.Has("device")) {
    ++kinds;
    Field device = f.Child("device");
    b.device = DeviceBackendConfig{device.String("path", true)};
    device.RejectUnknown();
  }
  if (kinds != 1)
    Field::Fail(f.Path("name") + "=" + b.name, "needs exactly one of file, iscsi, device");
  return b;
}

AgentConfig ParseRoot(Field& root) {
  AgentConfig c;
  c.node_name = root.String("node", false);
  if (root.Has("listen")) {
    Field listen = root.Child("listen");
    auto iscsi = listen.Strings("iscsi");
    if (!iscsi.empty()) c.iscsi_listen = iscsi;
    c.api_socket = listen.String("api", false);
    c.metrics_listen = listen.String("metrics", false);
    listen.RejectUnknown();
  }
  c.state_dir = root.String("stateDir", false);
  c.iqn_prefix = root.String("iqnPrefix", false, c.iqn_prefix);
  c.event_loops = static_cast<uint32_t>(root.Unsigned("eventLoops", 0, 64));
  root.Items("pools", [&](Field& f) {
    PoolConfig p;
    p.name = f.String("name", true);
    p.extent_size = f.Bytes("extentSize", false, p.extent_size);
    f.Items("backends", [&](Field& b) { p.backends.push_back(ParseBackend(b)); });
    c.pools.push_back(std::move(p));
  });
  root.Items("volumes", [&](Field& f) {
    VolumeConfig v;
    v.name = f.String("name", true);
    v.pool = f.String("pool", true);
    v.size = f.Bytes("size", false);
    v.read_only = f.Bool("readOnly", false);
    f.Items("extents", [&](Field& e) {
      v.extents.push_back(ExtentConfig{e.String("backend", true), e.Bytes("offset", true),
                                       e.Bytes("length", true)});
    });
    c.volumes.push_back(std::move(v));
  });
  root.Items("ports", [&](Field& f) {
    PortConfig p;
    p.target = f.String("target", true);
    p.volume = f.String("volume", true);
    p.initiators = f.Strings("initiators");
    p.allow_any_initiator = f.Bool("allowAnyInitiator", false);
    p.chap = ParseChap(f, "chap");
    p.mutual_chap = ParseChap(f, "mutualChap");
    c.ports.push_back(std::move(p));
  });
  root.Items("fuse", [&](Field& f) {
    c.fuse_exports.push_back(
        FuseExportConfig{f.String("volume", true), f.String("mountpoint", true)});
  });
  if (root.Has("paths")) {
    Field paths = root.Child("paths");
    auto duration = [&paths](const std::string& key, std::chrono::milliseconds fallback,
                             std::chrono::milliseconds min) {
      const std::string text = paths.String(key, false);
      if (text.empty()) return fallback;
      std::optional<std::chrono::milliseconds> d = ParseDuration(text);
      if (!d) Field::Fail(paths.Path(key), "'" + text + "' is not a duration (e.g. 500ms, 5s, 1m)");
      if (*d < min) {
        Field::Fail(paths.Path(key), "must be at least " + std::to_string(min.count()) + "ms");
      }
      return *d;
    };
    c.paths.probe_interval =
        duration("probeInterval", c.paths.probe_interval, std::chrono::milliseconds(10));
    c.paths.failure_threshold =
        static_cast<unsigned>(paths.Unsigned("failureThreshold", c.paths.failure_threshold, 100));
    if (c.paths.failure_threshold == 0) Field::Fail(paths.Path("failureThreshold"), "must be >= 1");
    c.paths.reroute = paths.Bool("reroute", c.paths.reroute);
    c.paths.io_timeout = duration("ioTimeout", c.paths.io_timeout, std::chrono::milliseconds(100));
    const std::string protection = paths.String("peerDataProtection", false);
    if (!protection.empty() && protection != "encrypt" && protection != "integrity") {
      Field::Fail(paths.Path("peerDataProtection"),
                  "'" + protection + "' is not encrypt or integrity");
    }
    c.paths.peer_data_integrity = protection == "integrity";
    paths.RejectUnknown();
  }
  if (root.Has("cluster")) {
    Field cluster = root.Child("cluster");
    ClusterMembershipConfig m;
    m.name = cluster.String("name", true);
    m.ns = cluster.String("namespace", true);
    m.kubeconfig = cluster.String("kubeconfig", false);
    m.peer_address = cluster.String("peerAddress", false);
    m.peer_listen = cluster.String("peerListen", false);
    m.peer_data_port = static_cast<uint16_t>(cluster.Unsigned("peerDataPort", 0, 65535));
    cluster.RejectUnknown();
    if (c.node_name.empty())
      Field::Fail("node", "is required when cluster is set (the member name)");
    c.cluster = std::move(m);
  }
  root.RejectUnknown();
  return c;
}

template <typename T>
void RequireUniqueNames(const std::vector<T>& items, const std::string& what,
                        std::string (*name_of)(const T&)) {
  std::set<std::string> names;
  for (size_t i = 0; i < items.size(); ++i) {
    std::string name = name_of(items[i]);
    if (!names.insert(name).second) {
      Field::Fail(what + "[" + std::to_string(i) + "]", "duplicate name '" + name + "'");
    }
  }
}

}  // namespace

const PoolConfig* AgentConfig::FindPool(const std::string& name) const {
  for (const auto& p : pools) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

const VolumeConfig* AgentConfig::FindVolume(const std::string& name) const {
  for (const auto& v : volumes) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

bool IsValidIscsiName(const std::string& name) {
  // RFC 7143 §4.2.7: iqn.yyyy-mm.reversed.domain[:anything], eui.<16 hex>, naa.<16|32 hex>.
  auto all_of = [](std::string_view s, auto pred) {
    for (char c : s) {
      if (!pred(c)) return false;
    }
    return !s.empty();
  };
  auto is_upper_hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  std::string_view n(name);
  if (n.size() > 223) return false;
  if (n.starts_with("eui.")) return n.size() == 20 && all_of(n.substr(4), is_upper_hex);
  if (n.starts_with("naa.")) {
    return (n.size() == 20 || n.size() == 36) && all_of(n.substr(4), is_upper_hex);
  }
  if (!n.starts_with("iqn.") || n.size() < 12) return false;
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!all_of(n.substr(4, 4), is_digit) || n[8] != '-' || !all_of(n.substr(9, 2), is_digit) ||
      n[11] != '.') {
    return false;
  }
  std::string_view rest = n.substr(12);
  size_t colon = rest.find(':');
  std::string_view domain = rest.substr(0, colon);
  auto is_name_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
  };
  if (!all_of(domain, is_name_char) || domain.front() == '.' || domain.back() == '.') return false;
  if (colon == std::string_view::npos) return true;
  return all_of(rest.substr(colon + 1),
                [&](char c) { return is_name_char(c) || c == ':' || c == '_'; });
}

void ValidateAgentConfig(const AgentConfig& config) {
  RequireUniqueNames<PoolConfig>(config.pools, "pools", [](const PoolConfig& p) { return p.name; });
  RequireUniqueNames<VolumeConfig>(config.volumes, "volumes",
                                   [](const VolumeConfig& v) { return v.name; });
  RequireUniqueNames<PortConfig>(config.ports, "ports",
                                 [](const PortConfig& p) { return p.target; });
  std::set<std::string> backends;
  for (size_t i = 0; i < config.pools.size(); ++i) {
    const PoolConfig& pool = config.pools[i];
    std::string path = "pools[" + std::to_string(i) + "]";
    if (pool.extent_size == 0 || pool.extent_size % 4096 != 0) {
      Field::Fail(path + ".extentSize", "must be a non-zero multiple of 4096");
    }
    for (size_t j = 0; j < pool.backends.size(); ++j) {
      if (!backends.insert(pool.backends[j].name).second) {
        Field::Fail(path + ".backends[" + std::to_string(j) + "]",
                    "duplicate backend name '" + pool.backends[j].name + "'");
      }
    }
  }
  for (size_t i = 0; i < config.volumes.size(); ++i) {
    const VolumeConfig& v = config.volumes[i];
    std::string path = "volumes[" + std::to_string(i) + "]";
    const PoolConfig* pool = config.FindPool(v.pool);
    if (!pool) Field::Fail(path + ".pool", "no pool named '" + v.pool + "'");
    if (v.extents.empty() && v.size == 0) Field::Fail(path, "needs a size or extents");
    uint64_t total = 0;
    for (size_t j = 0; j < v.extents.size(); ++j) {
      const ExtentConfig& e = v.extents[j];
      std::string epath = path + ".extents[" + std::to_string(j) + "]";
      bool found = false;
      for (const auto& b : pool->backends) {
        if (b.name != e.backend) continue;
        found = true;
        if (b.file && b.file->size && e.offset + e.length > b.file->size) {
          Field::Fail(epath, "extends past the end of backend '" + e.backend + "'");
        }
      }
      if (!found)
        Field::Fail(epath + ".backend", "pool '" + v.pool + "' has no backend '" + e.backend + "'");
      if (e.length == 0 || e.length % 4096 || e.offset % 4096) {
        Field::Fail(epath, "offset and length must be multiples of 4096, length non-zero");
      }
      total += e.length;
    }
    if (!v.extents.empty() && v.size && v.size != total) {
      Field::Fail(path + ".size", "does not match the sum of its extents");
    }
    if (v.size % 4096) Field::Fail(path + ".size", "must be a multiple of 4096");
  }
  for (size_t i = 0; i < config.ports.size(); ++i) {
    const PortConfig& p = config.ports[i];
    std::string path = "ports[" + std::to_string(i) + "]";
    if (!IsValidIscsiName(p.target))
      Field::Fail(path + ".target", "'" + p.target + "' is not a valid iSCSI name");
    if (!config.FindVolume(p.volume))
      Field::Fail(path + ".volume", "no volume named '" + p.volume + "'");
    for (size_t j = 0; j < p.initiators.size(); ++j) {
      if (!IsValidIscsiName(p.initiators[j])) {
        Field::Fail(path + ".initiators[" + std::to_string(j) + "]",
                    "'" + p.initiators[j] + "' is not a valid iSCSI name");
      }
    }
    if (p.initiators.empty() && !p.allow_any_initiator) {
      Field::Fail(path + ".initiators",
                  "is empty; list the allowed initiators or set allowAnyInitiator");
    }
    if (p.mutual_chap && !p.chap) Field::Fail(path + ".mutualChap", "needs chap as well");
  }
  if (!IsValidIscsiName(config.iqn_prefix) || config.iqn_prefix.find(':') != std::string::npos) {
    Field::Fail("iqnPrefix", "'" + config.iqn_prefix + "' is not an iqn. name without a colon");
  }
  for (size_t i = 0; i < config.fuse_exports.size(); ++i) {
    if (!config.FindVolume(config.fuse_exports[i].volume)) {
      Field::Fail("fuse[" + std::to_string(i) + "].volume",
                  "no volume named '" + config.fuse_exports[i].volume + "'");
    }
  }
}

AgentConfig ParseAgentConfig(const std::string& yaml_text, const std::string& origin) {
  YAML::Node doc;
  try {
    doc = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(origin + ": not valid YAML at line " + std::to_string(e.mark.line + 1) +
                      ", column " + std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (!doc || doc.IsNull()) throw ConfigError(origin + ": is empty");
  if (!doc.IsMap()) throw ConfigError(origin + ": the top level must be a mapping");
  try {
    Field root(doc, "");
    AgentConfig config = ParseRoot(root);
    ValidateAgentConfig(config);
    return config;
  } catch (const ConfigError& e) {
    throw ConfigError(origin + ": " + e.what());
  } catch (const YAML::Exception& e) {
    throw ConfigError(origin + ": " + e.msg);
  }
}

AgentConfig LoadAgentConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open the configuration file");
  std::stringstream text;
  text << in.rdbuf();
  return ParseAgentConfig(text.str(), path);
}

}  // namespace vios::agent
