// Unit tests of the leader-election protocol rules with a fake clock, against a local
// httplib::Server that stores one Lease with resourceVersion preconditions. The real
// kube-apiserver, real processes and SIGKILL are in leader_election_integration_test.cc.
#include "common/kube/leader_election.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <mutex>
#include <thread>

namespace vios::kube {
namespace {

using namespace std::chrono_literals;

// FakeLeaseServer keeps one Lease and enforces optimistic concurrency like the API server.
class FakeLeaseServer {
 public:
  FakeLeaseServer() {
    const std::string path = "/apis/coordination.k8s.io/v1/namespaces/ns/leases";
    server_.Get(path + "/lease", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      if (lease_.is_null()) return Fail(res, 404, "NotFound");
      res.set_content(lease_.dump(), "application/json");
    });
    server_.Post(path, [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!lease_.is_null()) return Fail(res, 409, "AlreadyExists");
      lease_ = nlohmann::json::parse(req.body);
      lease_["metadata"]["resourceVersion"] = std::to_string(++rv_);
      res.status = 201;
      res.set_content(lease_.dump(), "application/json");
    });
    server_.Put(path + "/lease", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      nlohmann::json body = nlohmann::json::parse(req.body);
      if (lease_.is_null()) return Fail(res, 404, "NotFound");
      if (body["metadata"]["resourceVersion"] != lease_["metadata"]["resourceVersion"]) {
        return Fail(res, 409, "Conflict");
      }
      lease_ = body;
      lease_["metadata"]["resourceVersion"] = std::to_string(++rv_);
      res.set_content(lease_.dump(), "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(1ms);
  }
  ~FakeLeaseServer() {
    server_.stop();
    thread_.join();
  }
  Config config() const {
    Config c;
    c.server = "http://127.0.0.1:" + std::to_string(port_);
    return c;
  }
  nlohmann::json spec() {
    std::lock_guard<std::mutex> lock(mu_);
    return lease_.is_null() ? nlohmann::json() : lease_["spec"];
  }

 private:
  static void Fail(httplib::Response& res, int code, const std::string& reason) {
    res.status = code;
    res.set_content(nlohmann::json{{"kind", "Status"}, {"code", code}, {"reason", reason}}.dump(),
                    "application/json");
  }

  httplib::Server server_;
  std::mutex mu_;
  nlohmann::json lease_;
  int rv_ = 0;
  int port_ = 0;
  std::thread thread_;
};

LeaderElectionConfig Candidate(const std::string& id) {
  LeaderElectionConfig config;
  config.lease_namespace = "ns";
  config.lease_name = "lease";
  config.identity = id;
  config.lease_duration = 3s;
  config.renew_deadline = 2s;
  config.retry_period = 500ms;
  return config;
}

TEST(LeaderElectionTest, RejectsInconsistentTiming) {
  FakeLeaseServer server;
  Client client(server.config());
  LeaderElectionConfig config = Candidate("a");
  config.renew_deadline = config.lease_duration;
  EXPECT_THROW(LeaderElector(client, config), std::invalid_argument);
  config = Candidate("");
  EXPECT_THROW(LeaderElector(client, config), std::invalid_argument);
}

TEST(LeaderElectionTest, TakesOverOnlyAfterLeaseUnchangedForItsDurationOnLocalClock) {
  FakeLeaseServer server;
  Client client(server.config());
  FakeClock clock;
  std::string seen_leader;
  LeaderElectionConfig b_config = Candidate("b");
  b_config.callbacks.on_new_leader = [&](const std::string& id) { seen_leader = id; };
  LeaderElector a(client, Candidate("a"), &clock);
  LeaderElector b(client, b_config, &clock);

  ASSERT_TRUE(a.TryAcquireOrRenew());
  EXPECT_EQ(server.spec()["holderIdentity"], "a");
  EXPECT_EQ(server.spec()["leaseDurationSeconds"], 3);
  EXPECT_FALSE(b.TryAcquireOrRenew());  // first sight of a's lease starts b's expiry clock
  EXPECT_EQ(seen_leader, "a");
  EXPECT_EQ(b.LeaderIdentity(), "a");

  clock.Advance(2s);
  ASSERT_TRUE(a.TryAcquireOrRenew());   // a renews: the record changes
  clock.Advance(1500ms);                // 3.5 s since b first saw the lease, 1.5 s since renewal
  EXPECT_FALSE(b.TryAcquireOrRenew());  // b sees the change now: still valid
  clock.Advance(2900ms);
  EXPECT_FALSE(b.TryAcquireOrRenew());
  clock.Advance(200ms);  // a stopped renewing 3.1 s (b's clock) ago
  ASSERT_TRUE(b.TryAcquireOrRenew());
  EXPECT_EQ(server.spec()["holderIdentity"], "b");
  EXPECT_EQ(server.spec()["leaseTransitions"], 1);
  EXPECT_EQ(seen_leader, "b");
  // a, back from a pause, must not win the lease back: it sees b's fresh record.
  EXPECT_FALSE(a.TryAcquireOrRenew());
}

TEST(LeaderElectionTest, ReleasedLeaseIsFreeAtOnce) {
  FakeLeaseServer server;
  Client client(server.config());
  FakeClock clock;
  LeaderElectionConfig a_config = Candidate("a");
  a_config.retry_period = 20ms;
  a_config.renew_deadline = 1s;
  LeaderElector a(client, a_config, &clock);
  LeaderElector b(client, Candidate("b"), &clock);
  std::thread runner([&] { a.Run(); });
  bool led = false;
  for (int i = 0; i < 1000 && !led; ++i) {
    std::this_thread::sleep_for(5ms);
    led = a.IsLeader();
  }
  EXPECT_TRUE(led);
  EXPECT_FALSE(b.TryAcquireOrRenew());
  a.Stop();
  runner.join();
  EXPECT_FALSE(a.IsLeader());
  EXPECT_EQ(server.spec()["holderIdentity"], "");
  EXPECT_TRUE(b.TryAcquireOrRenew());  // no waiting for expiry
}

}  // namespace
}  // namespace vios::kube
