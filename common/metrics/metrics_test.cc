// metrics_test: the Exposer serves a Registry over real HTTP; bucket helpers are well formed.
#include "common/metrics/metrics.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <prometheus/counter.h>

#include <algorithm>
#include <string>

namespace vios::metrics {
namespace {

TEST(ExposerTest, ServesCounterOnMetricsOverHttp) {
  Registry registry;
  auto& family = prometheus::BuildCounter()
                     .Name("vios_test_ios_total")
                     .Help("I/Os completed")
                     .Register(registry.registry());
  auto& reads = family.Add({{"op", "read"}});
  reads.Increment(3);

  std::string error;
  auto exposer = Exposer::Start("127.0.0.1", 0, &error);
  ASSERT_NE(exposer, nullptr) << error;
  ASSERT_NE(exposer->port(), 0);

  httplib::Client client("127.0.0.1", exposer->port());
  client.set_connection_timeout(5);
  client.set_read_timeout(5);
  // Nothing registered yet: prometheus-cpp answers 404.
  auto before = client.Get("/metrics");
  ASSERT_TRUE(before) << httplib::to_string(before.error());
  EXPECT_EQ(before->status, 404);

  exposer->Expose(registry);
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->body.find("# TYPE vios_test_ios_total counter"), std::string::npos) << res->body;
  EXPECT_NE(res->body.find("vios_test_ios_total{op=\"read\"} 3"), std::string::npos) << res->body;

  // Later increments show up in the next scrape.
  reads.Increment();
  res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_NE(res->body.find("vios_test_ios_total{op=\"read\"} 4"), std::string::npos) << res->body;
  EXPECT_NE(registry.Serialize().find("vios_test_ios_total{op=\"read\"} 4"), std::string::npos);
}

TEST(ExposerTest, ReportsErrorWhenPortIsTaken) {
  std::string error;
  auto first = Exposer::Start("127.0.0.1", 0, &error);
  ASSERT_NE(first, nullptr) << error;
  auto second = Exposer::Start("127.0.0.1", first->port(), &error);
  EXPECT_EQ(second, nullptr);
  EXPECT_NE(error.find("cannot listen"), std::string::npos) << error;
}

void ExpectIncreasing(const prometheus::Histogram::BucketBoundaries& b) {
  ASSERT_FALSE(b.empty());
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
  EXPECT_EQ(std::adjacent_find(b.begin(), b.end()), b.end()) << "duplicate bound";
}

TEST(BucketsTest, IoLatencyCoversMicrosecondsToSeconds) {
  auto b = IoLatencyBuckets();
  ExpectIncreasing(b);
  EXPECT_LE(b.front(), 20e-6);
  EXPECT_GE(b.back(), 5.0);
  EXPECT_LE(b.size(), 24u);  // Every bucket is a time series per label set: keep it small.
}

TEST(BucketsTest, OperationAndSizeBucketsAreIncreasing) {
  ExpectIncreasing(OperationLatencyBuckets());
  auto sizes = SizeBuckets();
  ExpectIncreasing(sizes);
  EXPECT_EQ(sizes.front(), 512);
  EXPECT_EQ(sizes.back(), 16.0 * 1024 * 1024);
}

}  // namespace
}  // namespace vios::metrics
