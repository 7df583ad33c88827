// Integration tests of the Events recorder against a real kube-apiserver.
#include <gtest/gtest.h>

#include "common/kube/event_recorder.h"
#include "common/kube/integration_util.h"

namespace vios::kube {
namespace {

using namespace kube::testing;

TEST(EventRecorderIntegrationTest, RepeatsAggregateIntoOneSeries) {
  Client& c = TestClient();
  std::string ns = NewNamespace("events");
  nlohmann::json cm = c.Create(resources::kConfigMaps, ns, ConfigMap(ns, "subject"));
  FakeClock clock;
  EventRecorder recorder(c, {"vios.dev/test", "test-instance", std::chrono::minutes(6)}, &clock);

  auto first = recorder.Record(cm, EventType::kWarning, "PathLost", "Reroute", "lun-3 lost");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->count, 1);
  std::optional<RecordedEvent> last;
  for (int i = 0; i < 3; ++i) {
    clock.Advance(std::chrono::seconds(10));
    last = recorder.Record(cm, EventType::kWarning, "PathLost", "Reroute", "lun-3 lost");
  }
  ASSERT_TRUE(last);
  EXPECT_EQ(last->name, first->name);
  EXPECT_EQ(last->count, 4);
  nlohmann::json event = c.Get(resources::kEvents, ns, first->name);
  EXPECT_EQ(event["series"]["count"], 4);
  EXPECT_TRUE(event["series"].contains("lastObservedTime"));
  EXPECT_EQ(event["regarding"]["name"], "subject");
  EXPECT_EQ(event["regarding"]["uid"], cm["metadata"]["uid"]);
  EXPECT_EQ(event["type"], "Warning");
  EXPECT_EQ(event["reportingController"], "vios.dev/test");

  // A different reason is a different event.
  auto other = recorder.Record(cm, EventType::kNormal, "PathRestored", "Failback", "lun-3 back");
  ASSERT_TRUE(other);
  EXPECT_NE(other->name, first->name);
  // After the aggregation window the same event starts a new series.
  clock.Advance(std::chrono::minutes(7));
  auto later = recorder.Record(cm, EventType::kWarning, "PathLost", "Reroute", "lun-3 lost");
  ASSERT_TRUE(later);
  EXPECT_NE(later->name, first->name);
  EXPECT_EQ(later->count, 1);
  EXPECT_EQ(c.List(resources::kEvents, ns).items.size(), 3u);
}

TEST(EventRecorderIntegrationTest, DeletedSeriesEventIsRecreated) {
  Client& c = TestClient();
  std::string ns = NewNamespace("events-gone");
  nlohmann::json cm = c.Create(resources::kConfigMaps, ns, ConfigMap(ns, "subject"));
  EventRecorder recorder(c, {"vios.dev/test", "test-instance", std::chrono::minutes(6)});
  auto first = recorder.Record(cm, EventType::kNormal, "Created", "Create", "made");
  ASSERT_TRUE(first);
  c.Delete(resources::kEvents, ns, first->name);
  auto again = recorder.Record(cm, EventType::kNormal, "Created", "Create", "made");
  ASSERT_TRUE(again);
  EXPECT_NE(again->name, first->name);
  EXPECT_EQ(again->count, 1);
}

TEST(EventRecorderIntegrationTest, RefusedEventIsReportedNotThrown) {
  Client& c = TestClient();
  // Empty reason and action are invalid for events.k8s.io/v1.
  EventRecorder recorder(c, {"vios.dev/test", "test-instance", std::chrono::minutes(6)});
  nlohmann::json obj = {{"apiVersion", "v1"},
                        {"kind", "ConfigMap"},
                        {"metadata", {{"name", "x"}, {"namespace", "default"}}}};
  EXPECT_FALSE(recorder.Record(obj, EventType::kNormal, "", "", "note"));
}

}  // namespace
}  // namespace vios::kube
