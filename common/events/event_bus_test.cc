#include "common/events/event_bus.h"

#include <gtest/gtest.h>

#include <future>
#include <map>
#include <mutex>
#include <vector>

namespace vios::events {
namespace {

Message Make(MessageType type, std::string source, std::string subject = "") {
  Message m;
  m.type = type;
  m.source = std::move(source);
  m.subject = std::move(subject);
  return m;
}

TEST(EventBusTest, RejectsSecondHandlerForSameType) {
  EventBus bus;
  bus.RegisterHandler(MessageType::kPathLost, "router",
                      [](const Message&) { return HandlerResult::Ok(); });
  try {
    bus.RegisterHandler(MessageType::kPathLost, "other",
                        [](const Message&) { return HandlerResult::Ok(); });
    FAIL() << "a second handler was accepted";
  } catch (const RegistrationError& e) {
    EXPECT_NE(std::string(e.what()).find("PathLost already has handler 'router'"),
              std::string::npos)
        << e.what();
  }
  // Any number of listeners is fine, and another type may have its own handler.
  bus.RegisterListener(MessageType::kPathLost, "a", [](const Message&) {});
  bus.RegisterListener(MessageType::kPathLost, "b", [](const Message&) {});
  bus.RegisterHandler(MessageType::kPathRestored, "router",
                      [](const Message&) { return HandlerResult::Ok(); });
}

TEST(EventBusTest, RejectsNamelessRegistrations) {
  EventBus bus;
  EXPECT_THROW(bus.RegisterListener(MessageType::kPortCreated, "", [](const Message&) {}),
               RegistrationError);
  EXPECT_THROW(bus.RegisterHandler(MessageType::kPortCreated, "h", nullptr), RegistrationError);
}

TEST(EventBusTest, HandlerActsAndEveryListenerObserves) {
  EventBus bus;
  std::mutex mu;
  std::vector<std::string> seen;
  auto record = [&](std::string who) {
    std::lock_guard lock(mu);
    seen.push_back(std::move(who));
  };
  bus.RegisterHandler(MessageType::kMemberDown, "operator", [&](const Message& m) {
    record("handler:" + m.subject);
    return HandlerResult::Ok();
  });
  bus.RegisterListener(MessageType::kMemberDown, "events",
                       [&](const Message& m) { record("listener1:" + m.subject); });
  bus.RegisterListener(MessageType::kMemberDown, "metrics",
                       [&](const Message& m) { record("listener2:" + m.subject); });
  bus.Publish(Make(MessageType::kMemberDown, "operator", "member/node-b"));
  bus.Flush();
  EXPECT_EQ(seen, (std::vector<std::string>{"handler:member/node-b", "listener1:member/node-b",
                                            "listener2:member/node-b"}));
  EXPECT_EQ(bus.GetStats().handled, 1u);
}

TEST(EventBusTest, DispatchesEachSourceInPublicationOrder) {
  EventBus bus(4);
  std::mutex mu;
  std::map<std::string, std::vector<uint64_t>> order;
  bus.RegisterHandler(MessageType::kConfigChanged, "recorder", [&](const Message& m) {
    std::lock_guard lock(mu);
    order[m.source].push_back(std::stoull(m.subject));
    return HandlerResult::Ok();
  });
  for (int i = 0; i < 500; ++i) {
    for (const char* source : {"a", "b", "c"}) {
      bus.Publish(Make(MessageType::kConfigChanged, source, std::to_string(i)));
    }
  }
  bus.Flush();
  ASSERT_EQ(order.size(), 3u);
  for (const auto& [source, values] : order) {
    ASSERT_EQ(values.size(), 500u) << source;
    for (uint64_t i = 0; i < values.size(); ++i) EXPECT_EQ(values[i], i) << source;
  }
}

TEST(EventBusTest, AssignsIncreasingSequencePerSource) {
  EventBus bus;
  EXPECT_EQ(bus.Publish(Make(MessageType::kPortCreated, "a")), 1u);
  EXPECT_EQ(bus.Publish(Make(MessageType::kPortCreated, "a")), 2u);
  EXPECT_EQ(bus.Publish(Make(MessageType::kPortCreated, "b")), 1u);
  bus.Flush();
  EXPECT_EQ(bus.GetStats().unhandled, 3u);
}

TEST(EventBusTest, SlowSourceDoesNotBlockOtherSources) {
  EventBus bus(2);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> fast_done;
  bus.RegisterHandler(MessageType::kPathLost, "slow", [&](const Message&) {
    released.wait();
    return HandlerResult::Ok();
  });
  bus.RegisterHandler(MessageType::kPathRestored, "fast", [&](const Message&) {
    fast_done.set_value();
    return HandlerResult::Ok();
  });
  bus.Publish(Make(MessageType::kPathLost, "slow-source"));
  bus.Publish(Make(MessageType::kPathRestored, "fast-source"));
  auto status = fast_done.get_future().wait_for(std::chrono::seconds(5));
  release.set_value();
  EXPECT_EQ(status, std::future_status::ready);
  bus.Flush();
}

TEST(EventBusTest, FailingHandlerAndListenerAreReportedAndDispatchGoesOn) {
  EventBus bus;
  std::vector<DispatchFailure> failures;
  std::mutex mu;
  bus.SetFailureObserver([&](const DispatchFailure& f) {
    std::lock_guard lock(mu);
    failures.push_back(f);
  });
  int delivered = 0;
  bus.RegisterHandler(MessageType::kRerouteStarted, "router", [&](const Message& m) {
    if (m.subject == "bad") return HandlerResult::Failed("no healthy peer");
    if (m.subject == "throw") throw std::runtime_error("boom");
    ++delivered;
    return HandlerResult::Ok();
  });
  bus.RegisterListener(MessageType::kRerouteStarted, "flaky", [&](const Message& m) {
    if (m.subject == "bad") throw std::runtime_error("listener broke");
  });
  int listener_seen = 0;
  bus.RegisterListener(MessageType::kRerouteStarted, "steady",
                       [&](const Message&) { ++listener_seen; });
  for (const char* subject : {"bad", "throw", "good"}) {
    bus.Publish(Make(MessageType::kRerouteStarted, "node-a", subject));
  }
  bus.Flush();
  EXPECT_EQ(delivered, 1);
  EXPECT_EQ(listener_seen, 3);
  ASSERT_EQ(failures.size(), 3u);
  EXPECT_TRUE(failures[0].is_handler);
  EXPECT_EQ(failures[0].error, "no healthy peer");
  EXPECT_FALSE(failures[1].is_handler);
  EXPECT_EQ(failures[1].receiver, "flaky");
  EXPECT_EQ(failures[2].error, "threw: boom");
  auto stats = bus.GetStats();
  EXPECT_EQ(stats.handler_failures, 2u);
  EXPECT_EQ(stats.listener_failures, 1u);
}

TEST(EventBusTest, UnregisteredReceiverIsNoLongerCalled) {
  EventBus bus;
  int calls = 0;
  RegistrationId id =
      bus.RegisterListener(MessageType::kPortDeleted, "l", [&](const Message&) { ++calls; });
  bus.Publish(Make(MessageType::kPortDeleted, "a"));
  bus.Flush();
  EXPECT_TRUE(bus.Unregister(id));
  EXPECT_FALSE(bus.Unregister(id));
  bus.Publish(Make(MessageType::kPortDeleted, "a"));
  bus.Flush();
  EXPECT_EQ(calls, 1);
}

TEST(MessageTest, TypeNamesRoundTrip) {
  for (MessageType type : kAllMessageTypes) {
    auto parsed = ParseMessageType(MessageTypeName(type));
    ASSERT_TRUE(parsed.has_value()) << MessageTypeName(type);
    EXPECT_EQ(*parsed, type);
  }
  EXPECT_FALSE(ParseMessageType("NoSuchThing").has_value());
}

}  // namespace
}  // namespace vios::events
