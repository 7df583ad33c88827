// The node DaemonSet manifest (see node_daemonset.h).
#include "operator/node_daemonset.h"

#include <cstdio>
#include <functional>
#include <set>

namespace vios::op {
namespace {

using nlohmann::json;

std::string Str(const json& obj, const char* key) {
  if (!obj.is_object() || !obj.contains(key) || !obj[key].is_string()) return "";
  return obj[key].get<std::string>();
}

// Fnv1a64 hashes the serialized spec (stable: nlohmann::json keeps object keys sorted).
std::string Fnv1a64(const std::string& text) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

json HostPathVolume(const std::string& name, const std::string& path, const std::string& type) {
  return {{"name", name}, {"hostPath", {{"path", path}, {"type", type}}}};
}

json EnvFromField(const std::string& name, const std::string& path) {
  return {{"name", name}, {"valueFrom", {{"fieldRef", {{"fieldPath", path}}}}}};
}

}  // namespace

std::string NodeDaemonSetName(const std::string& cluster) { return cluster + "-node"; }

namespace {
// The agent's own directories live under /vios in the container, so that no host path of a
// file backend (mounted at its own path) can collide with them.
constexpr const char* kStateMount = "/vios/state";
constexpr const char* kRunMount = "/vios/run";
}  // namespace

json OwnerReference(const json& obj) {
  return {{"apiVersion", Str(obj, "apiVersion")},
          {"kind", Str(obj, "kind")},
          {"name", Str(obj["metadata"], "name")},
          {"uid", Str(obj["metadata"], "uid")},
          {"controller", true},
          {"blockOwnerDeletion", true}};
}

json BuildNodeDaemonSet(const json& cluster, const NodeDaemonSetOptions& options) {
  const std::string name = Str(cluster["metadata"], "name");
  const std::string ns = Str(cluster["metadata"], "namespace");
  const json agents = cluster["spec"].value("agents", json::object());
  std::string image = Str(agents, "image");
  if (image.empty()) image = options.default_image;
  const std::string pull =
      Str(agents, "imagePullPolicy").empty() ? "IfNotPresent" : Str(agents, "imagePullPolicy");
  const std::string state_dir = "/var/lib/vios/" + ns + "/" + name;
  const std::string run_dir = "/run/vios/" + ns + "/" + name;
  const std::string plugin_dir = options.kubelet_dir + "/plugins/" + options.csi_driver_name;
  const std::string socket = plugin_dir + "/csi.sock";
  const json labels = {{"app.kubernetes.io/name", "vios-node"},
                       {"app.kubernetes.io/instance", name},
                       {kManagedByLabel, kManagedByValue},
                       {kClusterLabel, name}};

  json volumes = json::array({
      HostPathVolume("state", state_dir, "DirectoryOrCreate"),
      HostPathVolume("run", run_dir, "DirectoryOrCreate"),
      HostPathVolume("plugin-dir", plugin_dir, "DirectoryOrCreate"),
      HostPathVolume("registration-dir", options.kubelet_dir + "/plugins_registry", "Directory"),
      HostPathVolume("kubelet-dir", options.kubelet_dir, "Directory"),
      HostPathVolume("dev", "/dev", "Directory"),
  });
  json agent_mounts = json::array({{{"name", "state"}, {"mountPath", kStateMount}},
                                   {{"name", "run"}, {"mountPath", kRunMount}},
                                   {{"name", "dev"}, {"mountPath", "/dev"}}});
  // File backends live on the host at the same path in every agent: mount each directory.
  std::set<std::string> dirs;
  for (const json& pool : cluster["spec"].value("pools", json::array())) {
    for (const json& b : pool.value("backends", json::array())) {
      std::string path = Str(b.value("file", json::object()), "path");
      auto slash = path.rfind('/');
      if (slash == std::string::npos || slash == 0) continue;
      std::string dir = path.substr(0, slash);
      // /dev is mounted already; /vios is the agent's own.
      if (dir == "/dev" || dir.rfind("/dev/", 0) == 0 || dir == "/vios" ||
          dir.rfind("/vios/", 0) == 0)
        continue;
      dirs.insert(dir);
    }
  }
  int index = 0;
  for (const std::string& dir : dirs) {
    std::string vname = "backend-" + std::to_string(index++);
    volumes.push_back(HostPathVolume(vname, dir, "DirectoryOrCreate"));
    agent_mounts.push_back({{"name", vname}, {"mountPath", dir}});
  }

  json agent = {
      {"name", "vios-agent"},
      {"image", image},
      {"imagePullPolicy", pull},
      {"command", {"/usr/bin/vios-agent"}},
      {"args",
       {"--cluster=" + name, "--namespace=" + ns, "--node-name=$(VIOS_NODE_NAME)",
        "--state-dir=" + std::string(kStateMount),
        "--socket=" + std::string(kRunMount) + "/agent.sock",
        "--peer-port=" + std::to_string(options.ports.peer),
        "--peer-data-port=" + std::to_string(options.ports.data),
        "--metrics-address=0.0.0.0:" + std::to_string(options.ports.metrics)}},
      {"env",
       {EnvFromField("VIOS_NODE_NAME", "spec.nodeName"),
        // The agent advertises the node's address to its peers (host network).
        EnvFromField("VIOS_HOST_IP", "status.hostIP"),
        EnvFromField("VIOS_POD_NAME", "metadata.name"),
        EnvFromField("VIOS_NAMESPACE", "metadata.namespace")}},
      {"ports",
       {{{"name", "peer"}, {"containerPort", options.ports.peer}, {"protocol", "TCP"}},
        {{"name", "peer-data"}, {"containerPort", options.ports.data}, {"protocol", "TCP"}},
        {{"name", "metrics"}, {"containerPort", options.ports.metrics}, {"protocol", "TCP"}}}},
      {"securityContext",
       {{"privileged", false},
        {"allowPrivilegeEscalation", false},
        {"readOnlyRootFilesystem", true},
        {"capabilities", {{"drop", {"ALL"}}, {"add", {"SYS_ADMIN"}}}}}},
      {"volumeMounts", agent_mounts},
  };
  if (agents.contains("resources")) agent["resources"] = agents["resources"];

  json csi = {
      {"name", "vios-csi-node"},
      {"image", image},
      {"imagePullPolicy", pull},
      {"command", {"/usr/bin/vios-csi"}},
      {"args",
       {"--mode=node", "--endpoint=unix://" + socket, "--node-id=$(VIOS_NODE_NAME)",
        "--agent-socket=" + std::string(kRunMount) + "/agent.sock"}},
      {"env", {EnvFromField("VIOS_NODE_NAME", "spec.nodeName")}},
      {"securityContext", {{"privileged", true}}},
      {"volumeMounts",
       {{{"name", "plugin-dir"}, {"mountPath", plugin_dir}},
        {{"name", "run"}, {"mountPath", kRunMount}},
        {{"name", "dev"}, {"mountPath", "/dev"}},
        {{"name", "kubelet-dir"},
         {"mountPath", options.kubelet_dir},
         {"mountPropagation", "Bidirectional"}}}},
  };

  json registrar = {
      {"name", "node-driver-registrar"},
      {"image", options.registrar_image},
      {"args", {"--csi-address=/csi/csi.sock", "--kubelet-registration-path=" + socket}},
      {"securityContext",
       {{"allowPrivilegeEscalation", false},
        {"readOnlyRootFilesystem", true},
        {"capabilities", {{"drop", {"ALL"}}}}}},
      {"volumeMounts",
       {{{"name", "plugin-dir"}, {"mountPath", "/csi"}},
        {{"name", "registration-dir"}, {"mountPath", "/registration"}}}},
  };

  json pod_spec = {
      {"serviceAccountName", options.service_account},
      {"hostNetwork", true},
      {"dnsPolicy", "ClusterFirstWithHostNet"},
      {"priorityClassName", "system-node-critical"},
      {"terminationGracePeriodSeconds", 60},
      {"containers", {agent, csi, registrar}},
      {"volumes", volumes},
  };
  if (agents.contains("nodeSelector")) pod_spec["nodeSelector"] = agents["nodeSelector"];
  if (agents.contains("tolerations")) pod_spec["tolerations"] = agents["tolerations"];

  json spec = {
      {"selector",
       {{"matchLabels",
         {{"app.kubernetes.io/name", "vios-node"}, {"app.kubernetes.io/instance", name}}}}},
      {"updateStrategy",
       {{"type", "RollingUpdate"}, {"rollingUpdate", {{"maxSurge", 1}, {"maxUnavailable", 0}}}}},
      {"template", {{"metadata", {{"labels", labels}}}, {"spec", pod_spec}}},
  };
  const std::string hash = Fnv1a64(spec.dump());
  return {{"apiVersion", "apps/v1"},
          {"kind", "DaemonSet"},
          {"metadata",
           {{"name", NodeDaemonSetName(name)},
            {"namespace", ns},
            {"labels", labels},
            {"annotations", {{kSpecHashAnnotation, hash}}},
            {"ownerReferences", {OwnerReference(cluster)}}}},
          {"spec", spec}};
}

}  // namespace vios::op
