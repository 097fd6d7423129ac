// The pure core without sockets: FrameReader, WriteBudget, and two Channels talking
// through memory.
#include <gtest/gtest.h>

#include "testutil/pki.h"
#include "tls/channel.h"
#include "tls/context_internal.h"
#include "tls/frame_reader.h"
#include "tls/write_budget.h"

namespace cairn::tls {
namespace {

std::string Frame(const wire::Envelope& e) {
  std::string out;
  CHECK(wire::EncodeFrame(e.SerializeAsString(), &out).ok());
  return out;
}

wire::Envelope Ping(uint64_t nonce) {
  wire::Envelope e;
  e.mutable_ping()->set_nonce(nonce);
  return e;
}

TEST(FrameReaderTest, MessagesSplitAtEveryByteArriveWhole) {
  std::string stream = Frame(Ping(1)) + Frame(wire::Envelope()) + Frame(Ping(3));
  FrameReader reader(1024);
  std::vector<wire::Envelope> got;
  for (char c : stream) {
    reader.Append(std::string_view(&c, 1));
    for (;;) {
      Result<std::optional<wire::Envelope>> next = reader.Next();
      ASSERT_TRUE(next.ok()) << next.status().ToString();
      if (!next->has_value()) break;
      got.push_back(std::move(**next));
    }
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].ping().nonce(), 1u);
  EXPECT_EQ(got[1].msg_case(), wire::Envelope::MSG_NOT_SET);
  EXPECT_EQ(got[2].ping().nonce(), 3u);
  EXPECT_EQ(reader.buffered_bytes(), 0u);
}

TEST(FrameReaderTest, OversizedFrameFailsOnItsHeaderAndStaysFailed) {
  FrameReader reader(16);
  reader.Append(std::string("\x00\x00\x00\x11", 4));
  Result<std::optional<wire::Envelope>> next = reader.Next();
  ASSERT_FALSE(next.ok());
  EXPECT_EQ(next.status().message(), "frame of 17 bytes exceeds the limit of 16");
  reader.Append(Frame(Ping(1)));
  EXPECT_FALSE(reader.Next().ok());
}

// The first frame (the hello) has a small limit of its own: a connection that
// never says hello holds little. After it, frames up to the full limit pass.
TEST(FrameReaderTest, TheFirstFrameHasASmallerLimit) {
  FrameReader big_first(1 << 20, 16);
  big_first.Append(std::string("\x00\x00\x01\x00", 4));
  Result<std::optional<wire::Envelope>> next = big_first.Next();
  ASSERT_FALSE(next.ok());
  EXPECT_EQ(next.status().message(),
            "frame of 256 bytes exceeds the limit of 16 of the first frame (the hello)");

  FrameReader reader(1 << 20, 16);
  wire::Envelope big;
  big.mutable_goodbye()->set_reason(std::string(200, 'x'));
  reader.Append(Frame(Ping(1)) + Frame(big));
  next = reader.Next();
  ASSERT_TRUE(next.ok() && next->has_value());
  next = reader.Next();
  ASSERT_TRUE(next.ok() && next->has_value()) << "the second frame has the full limit";
  EXPECT_EQ((*next)->goodbye().reason().size(), 200u);
}

TEST(FrameReaderTest, UndecodableMessageFails) {
  FrameReader reader(16);
  reader.Append(std::string("\x00\x00\x00\x02\xff\xff", 6));
  Result<std::optional<wire::Envelope>> next = reader.Next();
  ASSERT_FALSE(next.ok());
  EXPECT_TRUE(next.status().IsCorruption());
}

TEST(WriteBudgetTest, CrossesHighWaterOnceAndDrainsAtLowWater) {
  WriteBudget b(/*high_water=*/100, /*low_water=*/10, /*limit=*/200);
  EXPECT_FALSE(b.Add(100));
  EXPECT_TRUE(b.Add(1));
  EXPECT_FALSE(b.Add(50));  // already paused
  EXPECT_TRUE(b.above_high_water());
  EXPECT_FALSE(b.Fits(50));
  EXPECT_TRUE(b.Fits(49));
  EXPECT_TRUE(b.Remove(141));  // down to exactly the low-water mark
  EXPECT_EQ(b.queued(), 10u);
}

TEST(WriteBudgetTest, DrainsWhenFallingToLowWater) {
  WriteBudget b(100, 10, 200);
  b.Add(150);
  EXPECT_FALSE(b.Remove(100));
  EXPECT_TRUE(b.Remove(40));
  EXPECT_FALSE(b.above_high_water());
  EXPECT_FALSE(b.Remove(10));
}

// Two Channels wired back to back in memory.
class ChannelTest : public ::testing::Test {
 protected:
  std::shared_ptr<const Context> Node(const std::string& cn) {
    testutil::Issued id = pki_.Issue(cn);
    return *Context::FromPem({pki_.ca_cert_pem(), id.cert_pem, id.key_pem});
  }

  // Moves ciphertext both ways until neither side has more; returns the first error.
  Status Pump(Channel& client, Channel& server) {
    for (int round = 0; round < 50; ++round) {
      std::string to_server = client.TakeCiphertext();
      std::string to_client = server.TakeCiphertext();
      if (to_server.empty() && to_client.empty()) return Status::Ok();
      CAIRN_RETURN_IF_ERROR(Feed(server, to_server, &server_in_));
      CAIRN_RETURN_IF_ERROR(Feed(client, to_client, &client_in_));
    }
    return Status::Ok();
  }

  Status Feed(Channel& c, std::string_view bytes, Channel::Input* total) {
    while (!bytes.empty()) {
      size_t n = std::min(bytes.size(), Channel::kMaxCiphertextPerCall);
      Result<Channel::Input> in = c.OnCiphertext(bytes.substr(0, n));
      if (!in.ok()) return in.status();
      total->opened |= in->opened;
      total->peer_closed |= in->peer_closed;
      for (auto& m : in->messages) total->messages.push_back(std::move(m));
      bytes.remove_prefix(n);
    }
    return Status::Ok();
  }

  testutil::TestPki pki_;
  Channel::Input client_in_, server_in_;
};

TEST_F(ChannelTest, HandshakeVerifiesBothPeersAndCarriesMessages) {
  Channel client(*Node("a"), Channel::Role::kClient);
  Channel server(*Node("b"), Channel::Role::kServer);
  EXPECT_EQ(client.Send(Ping(1)).code(), Status::Code::kFailedPrecondition);
  ASSERT_TRUE(client.Start().ok());
  ASSERT_TRUE(server.Start().ok());
  ASSERT_TRUE(Pump(client, server).ok());
  ASSERT_TRUE(client.open() && server.open());
  EXPECT_EQ(client.peer_id(), "b");
  EXPECT_EQ(server.peer_id(), "a");
  ASSERT_TRUE(client.Send(Ping(7)).ok());
  ASSERT_TRUE(server.Send(Ping(8)).ok());
  ASSERT_TRUE(Pump(client, server).ok());
  ASSERT_EQ(server_in_.messages.size(), 1u);
  EXPECT_EQ(server_in_.messages[0].ping().nonce(), 7u);
  ASSERT_EQ(client_in_.messages.size(), 1u);
  EXPECT_EQ(client_in_.messages[0].ping().nonce(), 8u);
}

TEST_F(ChannelTest, ShutdownDeliversCloseNotify) {
  Channel client(*Node("a"), Channel::Role::kClient);
  Channel server(*Node("b"), Channel::Role::kServer);
  ASSERT_TRUE(client.Start().ok() && server.Start().ok());
  ASSERT_TRUE(Pump(client, server).ok());
  client.Shutdown();
  EXPECT_EQ(client.Send(Ping(1)).code(), Status::Code::kFailedPrecondition);
  ASSERT_TRUE(Pump(client, server).ok());
  EXPECT_TRUE(server_in_.peer_closed);
  EXPECT_TRUE(server.peer_closed());
}

TEST_F(ChannelTest, ServerRefusesAClientWithoutCertificate) {
  auto anonymous = internal::UncheckedContext(pki_.ca_cert_pem(), "", "");
  ASSERT_TRUE(anonymous.ok());
  Channel client(**anonymous, Channel::Role::kClient);
  Channel server(*Node("b"), Channel::Role::kServer);
  ASSERT_TRUE(client.Start().ok() && server.Start().ok());
  Status s = Pump(client, server);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("peer did not return a certificate"), std::string::npos)
      << s.ToString();
  EXPECT_FALSE(server.open());
}

TEST_F(ChannelTest, GarbageBeforeTheHandshakeFails) {
  Channel server(*Node("b"), Channel::Role::kServer);
  ASSERT_TRUE(server.Start().ok());
  Result<Channel::Input> in = server.OnCiphertext("GET / HTTP/1.1\r\n\r\n");
  ASSERT_FALSE(in.ok());
  EXPECT_NE(in.status().message().find("TLS handshake failed"), std::string::npos);
}

}  // namespace
}  // namespace cairn::tls
