// Integration tests of allocation and deletion against a real kube-apiserver (local control
// plane): two controllers racing never hand out one extent twice; CreateVolume is idempotent by
// name; DeleteVolume zeroes the extents before they can be handed out again; a clone holds its
// source's bytes in its own extents; the pool gauges count what is allocated.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <thread>

#include "common/kube/integration_util.h"
#include "csi-driver/allocator.h"
#include "csi-driver/controller_service.h"
#include "csi-driver/pool_metrics.h"
#include "csi-driver/volume_record.h"
#include "node-agent/pool/extent_allocator.h"

namespace vios::csi {
namespace {

namespace fs = std::filesystem;
namespace r = kube::resources;
using kube::testing::NewNamespace;
using kube::testing::TestClient;

constexpr uint64_t kExtent = 1ull << 20;
constexpr uint64_t kPoolBytes = 96ull << 20;  // 96 extents

struct Fixture {
  std::string ns;
  fs::path pool_file;
};

Fixture MakeCluster(const std::string& prefix) {
  Fixture f;
  f.ns = NewNamespace(prefix);
  f.pool_file = fs::temp_directory_path() / ("csi-pool-" + f.ns + ".img");
  {
    int fd = ::open(f.pool_file.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0600);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::ftruncate(fd, kPoolBytes), 0);
    ::close(fd);
  }
  nlohmann::json cluster = {
      {"apiVersion", "vios.dev/v1alpha1"},
      {"kind", "VIOSCluster"},
      {"metadata", {{"name", "local"}, {"namespace", f.ns}}},
      {"spec",
       {{"pools",
         {{{"name", "pool0"},
           {"extentSize", "1Mi"},
           {"backends",
            {{{"name", "file0"},
              {"file", {{"path", f.pool_file.string()}, {"size", "96Mi"}}}}}}}}}}}};
  TestClient().Create(r::kVIOSClusters, f.ns, cluster);
  return f;
}

PoolSpec Pool(const Fixture& f) {
  std::string error;
  auto spec =
      PoolSpec::FromCluster(TestClient().Get(r::kVIOSClusters, f.ns, "local"), "pool0", &error);
  EXPECT_TRUE(spec.has_value()) << error;
  return *spec;
}

// AllExtents lists the extents of every VIOSVolume in ns.
std::vector<VolumeRecord> Volumes(const std::string& ns) {
  std::vector<VolumeRecord> out;
  for (const auto& obj : TestClient().ListAll(r::kVIOSVolumes, ns).items) {
    std::string error;
    auto rec = VolumeRecord::FromObject(obj, &error);
    EXPECT_TRUE(rec.has_value()) << error;
    if (rec) out.push_back(*rec);
  }
  return out;
}

TEST(AllocatorIntegrationTest, TwoRacingControllersNeverHandOutOneExtentTwice) {
  Fixture f = MakeCluster("csi-race");
  PoolSpec pool = Pool(f);
  std::atomic<uint64_t> allocated{0};
  std::atomic<int> exhausted{0};
  auto controller = [&](int replica) {
    kube::Client client(kube::testing::ControlPlaneConfig());  // own connection, own "process"
    PoolAllocator alloc(client, f.ns);
    for (int i = 0;; ++i) {
      std::string name = "r" + std::to_string(replica) + "-v" + std::to_string(i);
      uint64_t bytes = kExtent * static_cast<uint64_t>(1 + (i + replica) % 3);
      std::vector<pool::Extent> extents;
      try {
        extents = alloc.Reserve(pool, name, {}, bytes);
      } catch (const AllocationError& e) {
        EXPECT_EQ(e.code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << e.what();
        ++exhausted;
        return;
      }
      VolumeRecord rec;
      rec.id = name;
      rec.csi_name = name;
      rec.cluster = "local";
      rec.pool = "pool0";
      rec.size = bytes;
      rec.access_modes = {"ReadWriteOnce"};
      rec.extents = extents;
      client.Create(r::kVIOSVolumes, f.ns, rec.NewObject(f.ns));
      alloc.Release(pool, name);
      allocated += bytes;
    }
  };
  std::thread a(controller, 0);
  std::thread b(controller, 1);
  a.join();
  b.join();
  EXPECT_EQ(exhausted.load(), 2);

  // Every extent of every volume is distinct: marking them all used never finds a taken one.
  pool::ExtentAllocator check(kExtent);
  check.AddBackend("file0", kPoolBytes);
  auto volumes = Volumes(f.ns);
  uint64_t total = 0;
  for (const auto& v : volumes) {
    std::string error;
    EXPECT_TRUE(check.MarkUsed(v.extents, &error)) << v.id << ": " << error;
    total += v.ExtentBytes();
  }
  EXPECT_EQ(total, allocated.load());
  // The pool was filled up to the last few extents (a 2- or 3-extent request may not fit).
  EXPECT_GE(total, kPoolBytes - 2 * kExtent);
  EXPECT_GT(volumes.size(), 40u);
  fs::remove(f.pool_file);
}

TEST(AllocatorIntegrationTest, ReserveIsIdempotentForTheSameVolume) {
  Fixture f = MakeCluster("csi-idem");
  PoolSpec pool = Pool(f);
  PoolAllocator alloc(TestClient(), f.ns);
  auto first = alloc.Reserve(pool, "v", {}, 3 * kExtent);
  auto again = alloc.Reserve(pool, "v", {}, 3 * kExtent);  // a retry before the volume exists
  EXPECT_EQ(first, again);
  auto other = alloc.Reserve(pool, "w", {}, kExtent);  // the reservation protects v's extents
  pool::ExtentAllocator check(kExtent);
  check.AddBackend("file0", kPoolBytes);
  std::string error;
  EXPECT_TRUE(check.MarkUsed(first, &error));
  EXPECT_TRUE(check.MarkUsed(other, &error)) << error;
  EXPECT_EQ(alloc.FreeBytes(pool), kPoolBytes - 4 * kExtent);
  fs::remove(f.pool_file);
}

class ControllerIntegrationTest : public ::testing::Test {
 protected:
  ControllerIntegrationTest()
      : fixture_(MakeCluster("csi-ctrl")),
        metrics_(registry_),
        service_(TestClient(), zeroer_, ControllerOptions{fixture_.ns, "local", 4 * kExtent, {}},
                 metrics_) {}
  ~ControllerIntegrationTest() override { fs::remove(fixture_.pool_file); }

  ::csi::v1::CreateVolumeRequest CreateRequest(const std::string& name, int64_t bytes) {
    ::csi::v1::CreateVolumeRequest req;
    req.set_name(name);
    auto* cap = req.add_volume_capabilities();
    cap->mutable_mount();
    cap->mutable_access_mode()->set_mode(
        ::csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
    req.mutable_capacity_range()->set_required_bytes(bytes);
    (*req.mutable_parameters())["pool"] = "pool0";
    return req;
  }

  Fixture fixture_;
  metrics::Registry registry_;
  RpcMetrics metrics_;
  BackendZeroer zeroer_;
  ControllerService service_;
};

TEST_F(ControllerIntegrationTest, CreateVolumeIsIdempotentByNameAndSize) {
  ::csi::v1::CreateVolumeResponse a, b, c;
  auto req = CreateRequest("pvc-1", 3 * kExtent - 100);
  ASSERT_TRUE(service_.CreateVolume(nullptr, &req, &a).ok());
  EXPECT_EQ(a.volume().capacity_bytes(), static_cast<int64_t>(3 * kExtent));
  ASSERT_TRUE(service_.CreateVolume(nullptr, &req, &b).ok());
  EXPECT_EQ(a.volume().volume_id(), b.volume().volume_id());
  auto bigger = CreateRequest("pvc-1", 8 * kExtent);
  EXPECT_EQ(service_.CreateVolume(nullptr, &bigger, &c).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Volumes(fixture_.ns).size(), 1u);
}

TEST_F(ControllerIntegrationTest, BadInputAllocatesNothing) {
  ::csi::v1::CreateVolumeResponse resp;
  auto unknown_pool = CreateRequest("pvc-x", kExtent);
  (*unknown_pool.mutable_parameters())["pool"] = "nope";
  grpc::Status s = service_.CreateVolume(nullptr, &unknown_pool, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("no pool 'nope'"));
  auto unknown_cluster = CreateRequest("pvc-y", kExtent);
  (*unknown_cluster.mutable_parameters())["cluster"] = "elsewhere";
  EXPECT_EQ(service_.CreateVolume(nullptr, &unknown_cluster, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  auto too_big = CreateRequest("pvc-z", 2 * kPoolBytes);
  EXPECT_EQ(service_.CreateVolume(nullptr, &too_big, &resp).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(Volumes(fixture_.ns).empty());
  EXPECT_EQ(PoolAllocator(TestClient(), fixture_.ns).FreeBytes(Pool(fixture_)), kPoolBytes);
}

TEST_F(ControllerIntegrationTest, PublishEnforcesSingleNodeAccessAndUnknownNodes) {
  for (const char* node : {"node-a", "node-b"}) {
    try {
      TestClient().Create(r::kNodes, "",
                          {{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", node}}}});
    } catch (const kube::ApiError& e) {
      ASSERT_EQ(e.kind(), kube::ErrorKind::kAlreadyExists);
    }
  }
  ::csi::v1::CreateVolumeResponse created;
  auto req = CreateRequest("pvc-pub", kExtent);
  ASSERT_TRUE(service_.CreateVolume(nullptr, &req, &created).ok());
  ::csi::v1::ControllerPublishVolumeRequest pub;
  ::csi::v1::ControllerPublishVolumeResponse resp;
  pub.set_volume_id(created.volume().volume_id());
  *pub.mutable_volume_capability() = req.volume_capabilities(0);
  pub.set_node_id("node-nowhere");
  EXPECT_EQ(service_.ControllerPublishVolume(nullptr, &pub, &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
  pub.set_node_id("node-a");
  ASSERT_TRUE(service_.ControllerPublishVolume(nullptr, &pub, &resp).ok());
  ASSERT_TRUE(service_.ControllerPublishVolume(nullptr, &pub, &resp).ok());  // idempotent
  pub.set_node_id("node-b");
  EXPECT_EQ(service_.ControllerPublishVolume(nullptr, &pub, &resp).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  pub.set_node_id("node-a");
  pub.set_readonly(true);
  EXPECT_EQ(service_.ControllerPublishVolume(nullptr, &pub, &resp).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  auto vols = Volumes(fixture_.ns);
  ASSERT_EQ(vols.size(), 1u);
  ASSERT_EQ(vols[0].attachments.size(), 1u);
  EXPECT_EQ(vols[0].attachments[0].node, "node-a");
  EXPECT_EQ(vols[0].phase, "Attached");
  // A published volume is not deleted.
  ::csi::v1::DeleteVolumeRequest del;
  ::csi::v1::DeleteVolumeResponse dresp;
  del.set_volume_id(created.volume().volume_id());
  EXPECT_EQ(service_.DeleteVolume(nullptr, &del, &dresp).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  ::csi::v1::ControllerUnpublishVolumeRequest unpub;
  ::csi::v1::ControllerUnpublishVolumeResponse uresp;
  unpub.set_volume_id(created.volume().volume_id());
  unpub.set_node_id("node-a");
  ASSERT_TRUE(service_.ControllerUnpublishVolume(nullptr, &unpub, &uresp).ok());
  EXPECT_TRUE(service_.DeleteVolume(nullptr, &del, &dresp).ok());
}

TEST_F(ControllerIntegrationTest, DeleteVolumeZeroesExtentsBeforeTheyAreReused) {
  ::csi::v1::CreateVolumeResponse created;
  auto req = CreateRequest("pvc-secret", 2 * kExtent);
  ASSERT_TRUE(service_.CreateVolume(nullptr, &req, &created).ok());
  auto vols = Volumes(fixture_.ns);
  ASSERT_EQ(vols.size(), 1u);
  // A tenant writes its data through the volume: here straight into the backing file.
  std::string secret(4096, 'S');
  int fd = ::open(fixture_.pool_file.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  for (const auto& e : vols[0].extents) {
    ASSERT_EQ(::pwrite(fd, secret.data(), secret.size(), static_cast<off_t>(e.offset)),
              static_cast<ssize_t>(secret.size()));
    ASSERT_EQ(::pwrite(fd, secret.data(), secret.size(),
                       static_cast<off_t>(e.offset + e.length - secret.size())),
              static_cast<ssize_t>(secret.size()));
  }
  ::csi::v1::DeleteVolumeRequest del;
  ::csi::v1::DeleteVolumeResponse dresp;
  del.set_volume_id(created.volume().volume_id());
  ASSERT_TRUE(service_.DeleteVolume(nullptr, &del, &dresp).ok());
  ASSERT_TRUE(service_.DeleteVolume(nullptr, &del, &dresp).ok());  // idempotent
  EXPECT_TRUE(Volumes(fixture_.ns).empty());
  std::string buf(kPoolBytes, '\0');
  ASSERT_EQ(::pread(fd, buf.data(), buf.size(), 0), static_cast<ssize_t>(buf.size()));
  ::close(fd);
  EXPECT_EQ(buf.find('S'), std::string::npos) << "old data left in the pool";
  // The next volume gets the same (first-fit) extents, now zeroed.
  ::csi::v1::CreateVolumeResponse next;
  auto req2 = CreateRequest("pvc-next", 2 * kExtent);
  ASSERT_TRUE(service_.CreateVolume(nullptr, &req2, &next).ok());
  EXPECT_EQ(Volumes(fixture_.ns)[0].extents, vols[0].extents);
}

TEST_F(ControllerIntegrationTest, ExpandAllocatesMoreExtentsAndListPaginates) {
  ::csi::v1::CreateVolumeResponse created;
  for (int i = 0; i < 5; ++i) {
    auto req = CreateRequest("pvc-list-" + std::to_string(i), kExtent);
    ASSERT_TRUE(service_.CreateVolume(nullptr, &req, &created).ok());
  }
  ::csi::v1::ControllerExpandVolumeRequest exp;
  ::csi::v1::ControllerExpandVolumeResponse eresp;
  exp.set_volume_id(created.volume().volume_id());
  exp.mutable_capacity_range()->set_required_bytes(3 * kExtent);
  ASSERT_TRUE(service_.ControllerExpandVolume(nullptr, &exp, &eresp).ok());
  EXPECT_EQ(eresp.capacity_bytes(), static_cast<int64_t>(3 * kExtent));
  EXPECT_TRUE(eresp.node_expansion_required());
  std::set<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    ::csi::v1::ListVolumesRequest lreq;
    ::csi::v1::ListVolumesResponse lresp;
    lreq.set_max_entries(2);
    lreq.set_starting_token(token);
    ASSERT_TRUE(service_.ListVolumes(nullptr, &lreq, &lresp).ok());
    EXPECT_LE(lresp.entries_size(), 2);
    for (const auto& e : lresp.entries()) EXPECT_TRUE(seen.insert(e.volume().volume_id()).second);
    token = lresp.next_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(seen.size(), 5u);
  EXPECT_EQ(pages, 3);
  pool::ExtentAllocator check(kExtent);
  check.AddBackend("file0", kPoolBytes);
  std::string error;
  for (const auto& v : Volumes(fixture_.ns))
    EXPECT_TRUE(check.MarkUsed(v.extents, &error)) << error;
}

// GaugeValue reads `name{pool="pool0"} VALUE` from the Prometheus text; -1 when absent.
double GaugeValue(const std::string& text, const std::string& name) {
  const std::string key = name + "{pool=\"pool0\"} ";
  auto at = text.find(key);
  return at == std::string::npos ? -1 : std::stod(text.substr(at + key.size()));
}

TEST_F(ControllerIntegrationTest, CloneCopiesTheSourceIntoItsOwnExtents) {
  ::csi::v1::CreateVolumeResponse src;
  auto req = CreateRequest("pvc-src", 2 * kExtent);
  ASSERT_TRUE(service_.CreateVolume(nullptr, &req, &src).ok());
  auto source = Volumes(fixture_.ns)[0];
  // The tenant's data at the end of the first extent and the start of the second.
  std::string data(8192, 'D');
  int fd = ::open(fixture_.pool_file.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, data.data(), 4096,
                     static_cast<off_t>(source.extents[0].offset + kExtent - 4096)),
            4096);
  ASSERT_EQ(::pwrite(fd, data.data(), 4096,
                     static_cast<off_t>(source.extents.back().offset +
                                        source.extents.back().length - kExtent)),
            4096);

  auto clone = CreateRequest("pvc-clone", 3 * kExtent);
  clone.mutable_volume_content_source()->mutable_volume()->set_volume_id(src.volume().volume_id());
  ::csi::v1::CreateVolumeResponse made, again;
  ASSERT_TRUE(service_.CreateVolume(nullptr, &clone, &made).ok());
  EXPECT_EQ(made.volume().content_source().volume().volume_id(), src.volume().volume_id());
  EXPECT_EQ(made.volume().capacity_bytes(), static_cast<int64_t>(3 * kExtent));
  ASSERT_TRUE(service_.CreateVolume(nullptr, &clone, &again).ok());  // idempotent
  EXPECT_EQ(again.volume().volume_id(), made.volume().volume_id());
  VolumeRecord copy;
  for (auto& v : Volumes(fixture_.ns)) {
    if (v.id == made.volume().volume_id()) copy = v;
  }
  EXPECT_EQ(copy.phase, "Available");
  EXPECT_EQ(copy.source_volume, src.volume().volume_id());
  // Byte for byte: the clone's first two extents hold the source's bytes, the third zeroes.
  std::string want(2 * kExtent, '\0'), got(3 * kExtent, 'x');
  uint64_t pos = 0;
  for (const auto& e : source.extents) {
    ASSERT_EQ(::pread(fd, want.data() + pos, e.length, static_cast<off_t>(e.offset)),
              static_cast<ssize_t>(e.length));
    pos += e.length;
  }
  pos = 0;
  for (const auto& e : copy.extents) {
    ASSERT_EQ(::pread(fd, got.data() + pos, e.length, static_cast<off_t>(e.offset)),
              static_cast<ssize_t>(e.length));
    pos += e.length;
  }
  ::close(fd);
  EXPECT_NE(want.find('D'), std::string::npos);
  EXPECT_TRUE(got.compare(0, want.size(), want) == 0) << "the clone differs from its source";
  EXPECT_EQ(got.find_first_not_of('\0', want.size()), std::string::npos);

  // Bad sources: unknown, or larger than the clone asks for.
  ::csi::v1::CreateVolumeResponse resp;
  auto unknown = CreateRequest("pvc-clone-2", 2 * kExtent);
  unknown.mutable_volume_content_source()->mutable_volume()->set_volume_id("pvc-nowhere");
  EXPECT_EQ(service_.CreateVolume(nullptr, &unknown, &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
  auto small = CreateRequest("pvc-clone-3", kExtent);
  small.mutable_volume_content_source()->mutable_volume()->set_volume_id(src.volume().volume_id());
  EXPECT_EQ(service_.CreateVolume(nullptr, &small, &resp).error_code(),
            grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(Volumes(fixture_.ns).size(), 2u);

  // The pool gauges count both volumes.
  metrics::Registry registry;
  PoolMetrics pool_metrics(registry, TestClient(), fixture_.ns, "local");
  ASSERT_TRUE(pool_metrics.Refresh());
  const std::string text = registry.Serialize();
  EXPECT_EQ(GaugeValue(text, "vios_pool_capacity_bytes"), static_cast<double>(kPoolBytes)) << text;
  EXPECT_EQ(GaugeValue(text, "vios_pool_allocated_bytes"), static_cast<double>(5 * kExtent))
      << text;
}

}  // namespace
}  // namespace vios::csi
