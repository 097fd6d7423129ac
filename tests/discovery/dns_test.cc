// DNS seeds against a real DNS server: the test runs dnsmasq (Debian's dnsmasq-base)
// on a loopback port with SRV and A records, and nodes find each other through it.
// dnsmasq is killed in TearDown, also when a test fails.
#include <gtest/gtest.h>

#include <csignal>

#include "discovery/mesh_fixture.h"

namespace cairn::discovery::testing {
namespace {

constexpr const char* kDnsmasq = "/usr/sbin/dnsmasq";

class DnsTest : public MeshTest {
 protected:
  void SetUp() override {
    if (access(kDnsmasq, X_OK) != 0) GTEST_SKIP() << kDnsmasq << " is not installed";
    dns_port_ = FreePort();
  }

  void TearDown() override {
    if (running_) {
      uv_process_kill(&process_, SIGTERM);
      EXPECT_TRUE(RunUntil([&] { return !running_; })) << "dnsmasq did not exit";
    }
    if (spawned_ && !closed_) {
      uv_close(reinterpret_cast<uv_handle_t*>(&process_),
               [](uv_handle_t* h) { static_cast<DnsTest*>(h->data)->closed_ = true; });
      EXPECT_TRUE(RunUntil([&] { return closed_; }));
    }
    MeshTest::TearDown();
  }

  // Starts dnsmasq answering only from `records` (dnsmasq options).
  void StartDnsmasq(const std::vector<std::string>& records) {
    std::vector<std::string> args = {kDnsmasq,
                                     "--no-daemon",
                                     "--no-resolv",
                                     "--no-hosts",
                                     "--conf-file=/dev/null",
                                     "--pid-file=",
                                     "--port=" + std::to_string(dns_port_),
                                     "--listen-address=127.0.0.1",
                                     "--bind-interfaces"};
    args.insert(args.end(), records.begin(), records.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    uv_stdio_container_t stdio[3];
    for (auto& s : stdio) s.flags = UV_IGNORE;
    uv_process_options_t o{};
    o.file = kDnsmasq;
    o.args = argv.data();
    o.stdio_count = 3;
    o.stdio = stdio;
    o.exit_cb = [](uv_process_t* p, int64_t, int) {
      static_cast<DnsTest*>(p->data)->running_ = false;
    };
    process_.data = this;
    int rc = uv_spawn(&loop_, &process_, &o);
    spawned_ = true;
    ASSERT_EQ(rc, 0) << uv_strerror(rc);
    running_ = true;
  }

  DiscoveryConfig DnsConfig(std::vector<std::string> names) {
    DiscoveryConfig c = FastConfig();
    c.dns_names = std::move(names);
    c.dns_server = "127.0.0.1:" + std::to_string(dns_port_);
    c.log = [this](const std::string& line) { log_.push_back(line); };
    return c;
  }

  int Count(const std::string& needle) const {
    int n = 0;
    for (const std::string& line : log_) n += line.find(needle) != std::string::npos;
    return n;
  }

  int dns_port_ = 0;
  uv_process_t process_;
  bool spawned_ = false, running_ = false, closed_ = false;
  std::vector<std::string> log_;
};

TEST_F(DnsTest, NodesFindEachOtherThroughSrvRecordsAndAMissingNameIsRetried) {
  std::vector<std::string> ids = {"d0", "d1", "d2"};
  std::vector<std::string> records;
  // The nodes start before the server: their first lookups fail and are retried.
  for (const std::string& id : ids) {
    StartNode(id, {}, DnsConfig({"mesh.test", "missing.test"}));
    records.push_back("--srv-host=_cairn._tcp.mesh.test," + id + ".mesh.test," +
                      std::to_string(Node(id).port));
    records.push_back("--host-record=" + id + ".mesh.test,127.0.0.1");
  }
  StartDnsmasq(records);
  ASSERT_TRUE(RunUntil([&] { return FullMesh(ids); }, 15'000))
      << Describe("d0") << "\n"
      << (log_.empty() ? "" : log_.back());
  ASSERT_TRUE(RunUntil([&] { return Count("missing.test") >= 2 * 3; }))
      << "the missing name was not retried";
  EXPECT_TRUE(FullMesh(ids));
}

TEST_F(DnsTest, ANameWithoutSrvIsDialledOnTheDefaultPort) {
  StartNode("a");
  DiscoveryConfig c = DnsConfig({"plain.test"});
  c.dns_default_port = Node("a").port;
  StartNode("b", {}, c);
  StartDnsmasq({"--host-record=plain.test,127.0.0.1"});
  ASSERT_TRUE(RunUntil([&] { return FullMesh({"a", "b"}); }, 15'000)) << Describe("b");
}

}  // namespace
}  // namespace cairn::discovery::testing
