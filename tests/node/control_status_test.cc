// The status of a node that stores 100,000 devices, through a real ControlServer
// on a real Unix socket and libuv loop and the CLI's ControlClient: about 10 MiB,
// more than the 4 MiB frame limit of the peer protocol. It used to close the
// CLI's connection; now it comes in parts of 5,000 devices that the client
// joins, and a single reply beyond the control socket's limit becomes an error
// reply, not a closed socket.
#include <gtest/gtest.h>
#include <uv.h>

#include <atomic>
#include <functional>
#include <thread>

#include "journal/journal.h"
#include "node/control_client.h"
#include "node/control_server_uv.h"
#include "node/loop_post_uv.h"
#include "testutil/pki.h"
#include "testutil/status_matchers.h"

namespace cairn::node {
namespace {

// A ControlServer in DIR/cairn.sock whose status is `status()`, its loop on a
// thread of its own until the fixture ends.
class ControlStatusTest : public ::testing::Test {
 protected:
  void Serve(ControlServer::StatusProvider status) {
    journal::JournalOptions o;
    o.store.path = dir_.File("journal");
    o.ca = *journal::CertAuthority::FromPem(pki_.ca_cert_pem(), "test CA");
    auto j = journal::Journal::Open(std::move(o));
    ASSERT_OK(j);
    journal_ = std::move(*j);
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    post_ = std::make_unique<LoopPost>(&loop_);
    ASSERT_OK(post_->Init());
    server_ = std::make_unique<ControlServer>(&loop_, journal_.get(), post_.get(),
                                              std::move(status));
    ASSERT_OK(server_->Listen(dir_.File("cairn.sock")));
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }

  void TearDown() override {
    if (!thread_.joinable()) return;
    post_->Post([this] { server_->Close([this] { post_->Close([] {}); }); });
    thread_.join();
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }

  Result<wire::ControlReply> Status() {
    CAIRN_ASSIGN_OR_RETURN(auto client, ControlClient::Connect(dir_.path()));
    wire::ControlRequest req;
    req.mutable_status();
    return client->Call(req);
  }

  testutil::TempDir dir_;
  testutil::TestPki pki_;
  std::unique_ptr<journal::Journal> journal_;
  uv_loop_t loop_{};
  std::unique_ptr<LoopPost> post_;
  std::unique_ptr<ControlServer> server_;
  std::thread thread_;
};

wire::ControlStatusReply Devices(int n, size_t via_bytes) {
  wire::ControlStatusReply r;
  r.set_node("big");
  for (int i = 0; i < n; ++i) {
    auto* d = r.add_devices();
    d->set_device("device-" + std::to_string(i) + std::string(40, 'x'));
    d->set_last(static_cast<uint64_t>(i));
    d->set_via(std::string(via_bytes, 'v'));
  }
  return r;
}

TEST_F(ControlStatusTest, AStatusOfAHundredThousandDevicesArrivesWhole) {
  Serve([] { return Devices(100'000, 40); });
  auto r = Status();
  ASSERT_OK(r);
  ASSERT_TRUE(r->has_status());
  EXPECT_GT(r->ByteSizeLong(), 4u << 20);
  ASSERT_EQ(r->status().devices_size(), 100'000);
  EXPECT_EQ(r->status().devices(99'999).last(), 99'999u);
}

TEST_F(ControlStatusTest, SeventyFiveMegabytesOfStatusArriveInParts) {
  Serve([] { return Devices(100'000, 700); });  // about 75 MiB, 3.5 MiB a part
  auto r = Status();
  ASSERT_OK(r);
  ASSERT_EQ(r->status().devices_size(), 100'000);
  EXPECT_EQ(r->status().node(), "big");
  EXPECT_EQ(r->status().devices(54'321).last(), 54'321u);
}

TEST_F(ControlStatusTest, AReplyBeyondTheLimitIsAnErrorNotAClosedSocket) {
  Serve([] { return Devices(1, 70u << 20); });  // one part of 70 MiB
  auto r = Status();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kResourceExhausted) << r.status().ToString();
  EXPECT_NE(r.status().message().find("too large"), std::string::npos);
}

}  // namespace
}  // namespace cairn::node
