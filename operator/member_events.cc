// Member transition listeners (see member_events.h).
#include "operator/member_events.h"

#include "common/log/log.h"

namespace vios::op {
namespace {

using nlohmann::json;

constexpr events::MessageType kMemberTypes[] = {events::MessageType::kMemberJoined,
                                                events::MessageType::kMemberDown,
                                                events::MessageType::kMemberUp};

std::string Attr(const events::Message& m, const std::string& key) {
  auto it = m.attributes.find(key);
  return it == m.attributes.end() ? "" : it->second;
}

const char* ActionOf(events::MessageType type) {
  return type == events::MessageType::kMemberJoined ? "Admit" : "Heartbeat";
}

}  // namespace

events::Message MemberMessage(events::MessageType type, const json& member,
                              const std::string& text) {
  const json& md = member["metadata"];
  events::Message m;
  m.type = type;
  m.source = "operator";
  m.subject = "member/" + md.value("namespace", "") + "/" + md.value("name", "");
  m.text = text;
  m.attributes = {{"namespace", md.value("namespace", "")},
                  {"name", md.value("name", "")},
                  {"uid", md.value("uid", "")},
                  {"cluster", member["spec"].value("cluster", "")},
                  {"node", member["spec"].value("nodeName", "")}};
  return m;
}

void RegisterMemberListeners(events::EventBus& bus, kube::EventRecorder* recorder,
                             OperatorMetrics* metrics) {
  for (events::MessageType type : kMemberTypes) {
    if (recorder != nullptr) {
      bus.RegisterListener(type, "kubernetes-events", [recorder](const events::Message& m) {
        json regarding = {{"apiVersion", "vios.dev/v1alpha1"},
                          {"kind", "VIOSMember"},
                          {"metadata",
                           {{"name", Attr(m, "name")},
                            {"namespace", Attr(m, "namespace")},
                            {"uid", Attr(m, "uid")}}}};
        recorder->Record(
            regarding,
            events::IsWarning(m.type) ? kube::EventType::kWarning : kube::EventType::kNormal,
            std::string(events::MessageTypeName(m.type)), ActionOf(m.type), m.text);
      });
    }
    bus.RegisterListener(type, "log", [](const events::Message& m) {
      // VIOS_LOG takes a fixed level; the level here depends on the message.
      log::Line(events::IsWarning(m.type) ? log::Level::kWarning : log::Level::kInfo,
                "member transition", __FILE__, __LINE__)
          .Field("type", events::MessageTypeName(m.type))
          .Field("namespace", Attr(m, "namespace"))
          .Field("member", Attr(m, "name"))
          .Field("cluster", Attr(m, "cluster"))
          .Field("node", Attr(m, "node"))
          .Field("text", m.text);
    });
    if (metrics != nullptr) {
      bus.RegisterListener(type, "metrics", [metrics](const events::Message& m) {
        metrics->MemberTransition(std::string(events::MessageTypeName(m.type)));
      });
    }
  }
}

}  // namespace vios::op
