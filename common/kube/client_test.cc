// Unit tests of the client's HTTP behaviour against a local httplib::Server on 127.0.0.1 that
// plays a misbehaving API server: garbage JSON, 500 then success, 429, no server at all, watch
// streams split across chunks, 410, and cancellation. The real API server is exercised by the
// integration tests.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "common/kube/client.h"
#include "common/kube/watch.h"

namespace vios::kube {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

const ResourceRef kCm = resources::kConfigMaps;

class FakeApiServer {
 public:
  FakeApiServer() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(1ms);
  }
  ~FakeApiServer() {
    server_.stop();
    thread_.join();
  }
  httplib::Server& server() { return server_; }
  Config config() const {
    Config c;
    c.server = "http://127.0.0.1:" + std::to_string(port_);
    c.token = "abc";
    return c;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

RetryPolicy FastRetry() { return RetryPolicy{3, 10ms, 50ms}; }

std::string StatusBody(int code, const std::string& reason) {
  return nlohmann::json{{"kind", "Status"}, {"code", code}, {"reason", reason}, {"message", "m"}}
      .dump();
}

TEST(ClientTest, GarbageJsonIsAClearError) {
  FakeApiServer fake;
  fake.server().Get(".*", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"kind\": \"ConfigMap\", trailing garbage", "application/json");
  });
  Client client(fake.config(), FastRetry());
  try {
    client.Get(kCm, "default", "x");
    FAIL() << "garbage accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kGarbageResponse);
    EXPECT_THAT(e.what(), HasSubstr("GET /api/v1/namespaces/default/configmaps/x"));
    EXPECT_THAT(e.what(), HasSubstr("not valid JSON"));
  }
}

TEST(ClientTest, ListWithoutItemsIsGarbage) {
  FakeApiServer fake;
  fake.server().Get(".*", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"kind\": \"ConfigMapList\"}", "application/json");
  });
  Client client(fake.config(), FastRetry());
  EXPECT_THROW(client.List(kCm, "default"), ApiError);
}

TEST(ClientTest, UnreachableServerFailsAfterBoundedRetries) {
  // Bind a port without listening, read it back and close it: nothing listens there.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int port = ntohs(addr.sin_port);
  close(fd);
  Config config;
  config.server = "http://127.0.0.1:" + std::to_string(port);
  Client client(config, FastRetry());
  auto start = std::chrono::steady_clock::now();
  try {
    client.Get(kCm, "default", "x");
    FAIL() << "no error";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnreachable);
    EXPECT_THAT(e.what(), HasSubstr("cannot connect to http://127.0.0.1:"));
  }
  EXPECT_GE(std::chrono::steady_clock::now() - start, 10ms);  // it did back off
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(ClientTest, GetIsRetriedAfterServerErrorAndSendsToken) {
  FakeApiServer fake;
  std::atomic<int> calls{0};
  std::string auth;
  fake.server().Get(".*", [&](const httplib::Request& req, httplib::Response& res) {
    auth = req.get_header_value("Authorization");
    if (calls++ == 0) {
      res.status = 500;
      res.set_content(StatusBody(500, "InternalError"), "application/json");
      return;
    }
    res.set_content(R"({"kind":"ConfigMap","metadata":{"name":"x"}})", "application/json");
  });
  Client client(fake.config(), FastRetry());
  nlohmann::json cm = client.Get(kCm, "default", "x");
  EXPECT_EQ(cm["metadata"]["name"], "x");
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(auth, "Bearer abc");
}

TEST(ClientTest, CreateIsNotRetriedAfterServerError) {
  FakeApiServer fake;
  std::atomic<int> calls{0};
  fake.server().Post(".*", [&](const httplib::Request&, httplib::Response& res) {
    calls++;
    res.status = 500;
    res.set_content(StatusBody(500, "InternalError"), "application/json");
  });
  Client client(fake.config(), FastRetry());
  try {
    client.Create(kCm, "default", {{"metadata", {{"name", "x"}}}});
    FAIL() << "no error";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kServerError);
    EXPECT_THAT(e.what(), HasSubstr("POST /api/v1/namespaces/default/configmaps"));
  }
  EXPECT_EQ(calls.load(), 1);
}

TEST(ClientTest, CreateIsRetriedAfterTooManyRequests) {
  FakeApiServer fake;
  std::atomic<int> calls{0};
  fake.server().Post(".*", [&](const httplib::Request& req, httplib::Response& res) {
    if (calls++ == 0) {
      res.status = 429;
      res.set_header("Retry-After", "0");
      res.set_content(StatusBody(429, "TooManyRequests"), "application/json");
      return;
    }
    res.status = 201;
    res.set_content(req.body, "application/json");
  });
  Client client(fake.config(), FastRetry());
  EXPECT_EQ(client.Create(kCm, "default", {{"metadata", {{"name", "x"}}}})["metadata"]["name"],
            "x");
  EXPECT_EQ(calls.load(), 2);
}

TEST(ClientTest, ListAllFollowsContinueTokens) {
  FakeApiServer fake;
  fake.server().Get(".*", [&](const httplib::Request& req, httplib::Response& res) {
    EXPECT_EQ(req.get_param_value("labelSelector"), "app=vios,tier in (a,b)");
    std::string cont = req.get_param_value("continue");
    nlohmann::json list = {{"kind", "ConfigMapList"}, {"metadata", {{"resourceVersion", "77"}}}};
    int page = cont.empty() ? 0 : std::stoi(cont);
    list["items"] = {{{"metadata", {{"name", "cm" + std::to_string(page)}}}}};
    if (page < 2) list["metadata"]["continue"] = std::to_string(page + 1);
    res.set_content(list.dump(), "application/json");
  });
  Client client(fake.config(), FastRetry());
  ListOptions options;
  options.label_selector = "app=vios,tier in (a,b)";
  ListResult all = client.ListAll(kCm, "default", options, 1);
  ASSERT_EQ(all.items.size(), 3u);
  EXPECT_EQ(all.items[2]["metadata"]["name"], "cm2");
  EXPECT_EQ(all.resource_version, "77");
}

TEST(WatcherTest, DeliversEventsSplitAcrossChunksThenExpires) {
  FakeApiServer fake;
  std::string stream =
      R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}})"
      "\n"
      R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}})"
      "\n"
      R"({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}})"
      "\n";
  fake.server().Get(".*", [&](const httplib::Request& req, httplib::Response& res) {
    EXPECT_EQ(req.get_param_value("watch"), "1");
    EXPECT_EQ(req.get_param_value("resourceVersion"), "4");
    EXPECT_EQ(req.get_param_value("allowWatchBookmarks"), "true");
    res.set_chunked_content_provider("application/json",
                                     [stream](size_t offset, httplib::DataSink& sink) {
                                       // 7-byte pieces cut lines anywhere.
                                       if (offset >= stream.size()) {
                                         sink.done();
                                         return true;
                                       }
                                       std::string piece = stream.substr(offset, 7);
                                       sink.write(piece.data(), piece.size());
                                       return true;
                                     });
  });
  Client client(fake.config(), FastRetry());
  WatchOptions options;
  options.resource_version = "4";
  Watcher watcher(client, kCm, "default", options);
  std::vector<WatchEvent> events;
  try {
    watcher.Run([&](const WatchEvent& e) { events.push_back(e); });
    FAIL() << "410 not surfaced";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kExpired);
  }
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].object["metadata"]["name"], "a");
  EXPECT_EQ(watcher.last_resource_version(), "9");
}

TEST(WatcherTest, GoneStatusIsExpired) {
  FakeApiServer fake;
  fake.server().Get(".*", [&](const httplib::Request&, httplib::Response& res) {
    res.status = 410;
    res.set_content(StatusBody(410, "Expired"), "application/json");
  });
  Client client(fake.config(), FastRetry());
  Watcher watcher(client, kCm, "default", {});
  try {
    watcher.Run([](const WatchEvent&) {});
    FAIL() << "no error";
  } catch (const ApiError& e) {
    EXPECT_TRUE(IsExpired(e));
  }
}

TEST(WatcherTest, StopFromAnotherThreadEndsAnIdleWatchPromptly) {
  FakeApiServer fake;
  std::atomic<bool> release{false};
  fake.server().Get(".*", [&](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("application/json", [&](size_t, httplib::DataSink& sink) {
      std::this_thread::sleep_for(20ms);  // an idle watch: no events
      if (release.load()) sink.done();
      return true;
    });
  });
  Client client(fake.config(), FastRetry());
  Watcher watcher(client, kCm, "default", {});
  std::atomic<bool> returned{false};
  std::thread runner([&] {
    watcher.Run([](const WatchEvent&) {});
    returned = true;
  });
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(returned.load());
  auto start = std::chrono::steady_clock::now();
  watcher.Stop();
  runner.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_TRUE(returned.load());
  release = true;
}

TEST(WatcherTest, GarbageLineEndsTheWatchWithAClearError) {
  FakeApiServer fake;
  fake.server().Get(".*", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content("this is not json\n", "application/json");
  });
  Client client(fake.config(), FastRetry());
  Watcher watcher(client, kCm, "default", {});
  try {
    watcher.Run([](const WatchEvent&) {});
    FAIL() << "no error";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kGarbageResponse);
    EXPECT_THAT(e.what(), HasSubstr("WATCH /api/v1/namespaces/default/configmaps"));
  }
}

TEST(ResourceRefTest, BuildsCoreAndGroupPaths) {
  EXPECT_EQ(resources::kConfigMaps.Path("ns", "x"), "/api/v1/namespaces/ns/configmaps/x");
  EXPECT_EQ(resources::kVIOSVolumes.Path("ns", "v", "status"),
            "/apis/vios.dev/v1alpha1/namespaces/ns/viosvolumes/v/status");
  EXPECT_EQ(resources::kNodes.Path("ignored", "n1"), "/api/v1/nodes/n1");
  EXPECT_EQ(resources::kLeases.Path(""), "/apis/coordination.k8s.io/v1/leases");
  EXPECT_EQ(UrlEncode("a=b,c in (d)"), "a%3Db%2Cc%20in%20%28d%29");
}

TEST(TransportTest, BadServerUrlAndBadPemAreConfigErrors) {
  Config config;
  config.server = "ftp://x";
  EXPECT_THROW(Transport{config}, ConfigError);
  config.server = "https://127.0.0.1:6443";
  config.ca_pem = "not a certificate";
  EXPECT_THROW(Transport{config}, ConfigError);
}

}  // namespace
}  // namespace vios::kube
