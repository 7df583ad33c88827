// Names the CSI driver derives: VIOSVolume object names from CSI volume names (deterministic, so a
// retried CreateVolume finds its volume), virtual port and iSCSI iface/initiator names, the
// per-pool allocation ConfigMap, and ListVolumes page tokens.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vios::csi {

// kDriverName is the CSI plugin name (GetPluginInfo, StorageClass provisioner).
inline constexpr const char* kDriverName = "csi.vios.dev";
// kIqnPrefix names the placeholder attachment IQNs the controller records at publish time.
inline constexpr const char* kIqnPrefix = "iqn.2026-11.dev.vios";

// Annotations that carried spec.csiName/transport/fsType before the schema had those fields;
// still read (volume_record.cc) so older VIOSVolumes keep working, no longer written.
inline constexpr const char* kAnnotationCsiName = "vios.dev/csi-name";
inline constexpr const char* kAnnotationTransport = "vios.dev/transport";
inline constexpr const char* kAnnotationFsType = "vios.dev/fs-type";

// Fnv1a64 is the hash behind derived names (stable across versions: names are persisted).
uint64_t Fnv1a64(std::string_view text);

// VolumeObjectName maps a CSI volume name (any UTF-8, up to 128+ bytes) to a DNS-1123 subdomain
// of at most 53 characters: a readable prefix plus 16 hex digits of the name's hash.
std::string VolumeObjectName(std::string_view csi_name);

// DnsLabel lowercases text and keeps [a-z0-9-] (others become '-'), trims '-' at the ends and
// cuts to max_len; empty input gives "x".
std::string DnsLabel(std::string_view text, size_t max_len);

// PortName is the agent's idempotency key for the virtual port of volume_id on node_id.
std::string PortName(std::string_view volume_id, std::string_view node_id);

// InitiatorName is the iSCSI initiator IQN of one virtual port's iface (one per pod/port).
std::string InitiatorName(std::string_view node_id, std::string_view port_name);

// AllocationConfigMapName names the ConfigMap that serializes allocations in one pool.
std::string AllocationConfigMapName(std::string_view cluster, std::string_view pool);

// AttachmentIqn is the virtualPortIQN recorded for a controller publish; read-only publishes
// carry a ":ro" suffix, so a read-only and a read-write publish to one node are two list entries
// (the attachments list is keyed by node and IQN); status.attachments[].readOnly says it too.
std::string AttachmentIqn(std::string_view volume_id, std::string_view node_id, bool read_only);

// ListVolumes page tokens: "after:<volume id>". ParsePageToken returns nullopt for garbage.
std::string MakePageToken(std::string_view last_volume_id);
std::optional<std::string> ParsePageToken(std::string_view token);

}  // namespace vios::csi
