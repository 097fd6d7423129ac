// Test vocabulary for src/tls on a real libuv loop: a fixture owning the loop, a
// watchdog-bounded RunUntil (no sleeping), endpoints made from an in-memory test CA,
// a recorder of connection callbacks, and a plain TCP client for misbehaving peers.
// TearDown closes everything and checks uv_loop_close() == 0 (nothing leaked).
#pragma once

#include <gtest/gtest.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "testutil/pki.h"
#include "tls/context.h"
#include "tls/endpoint_uv.h"
#include "wire/schema.h"

namespace cairn::tls::testing {

// Everything the callbacks of one or more connections reported, in order.
struct Recorder {
  std::vector<Connection*> opened;
  std::vector<std::string> peer_ids;
  std::vector<wire::Envelope> messages;
  std::vector<CloseReason> closes;
  int high_water = 0;
  int drained = 0;
  bool echo = false;  // send every message back on its connection

  ConnectionCallbacks Callbacks();
  // The first close reason, or "" when none yet.
  std::string FirstClose() const;
};

// A plain TCP client (no TLS): connects, writes what it is told, records what it gets.
class RawClient {
 public:
  RawClient(uv_loop_t* loop, int port);
  ~RawClient();
  void Write(std::string bytes);
  void Close();
  bool connected() const { return connected_; }
  bool ended() const { return ended_; }  // EOF or error from the server
  bool closed() const { return closed_; }
  const std::string& received() const { return received_; }

 private:
  struct Req;
  uv_tcp_t tcp_;
  uv_connect_t connect_;
  std::vector<std::string> pending_;
  bool connected_ = false, ended_ = false, closed_ = false, closing_ = false;
  std::string received_;
  char buffer_[16 << 10];
};

// An Envelope whose serialized size is exactly `bytes`. REQUIRES: bytes != 1, 3.
wire::Envelope EnvelopeOfSize(size_t bytes);

class LoopTest : public ::testing::Test {
 protected:
  LoopTest();
  ~LoopTest() override;
  void TearDown() override;

  // Runs the loop until `done()` holds or `timeout_ms` pass; returns done().
  bool RunUntil(const std::function<bool()>& done, uint64_t timeout_ms = 10'000);

  // A context for `cn` signed by the test CA (checked load, must succeed).
  std::shared_ptr<const Context> NodeContext(const std::string& cn);
  Endpoint* MakeEndpoint(std::shared_ptr<const Context> context, Options options = {});
  // Listens on 127.0.0.1, port 0; returns the port.
  int Listen(Endpoint* endpoint, ConnectionCallbacks callbacks);
  RawClient* MakeRawClient(int port);
  // A Recorder that outlives every endpoint (callbacks may run until TearDown).
  Recorder& NewRecorder();

  // Opens a fresh "good" client to `port`, round-trips one message through an echoing
  // server and closes it: proof that the server still serves.
  void ExpectServesGoodClient(int port);

  // Options with short timeouts for tests.
  static Options FastOptions();

  uv_loop_t loop_;
  testutil::TestPki pki_;

 private:
  uv_timer_t watchdog_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  std::vector<std::unique_ptr<RawClient>> raw_clients_;
  std::vector<std::unique_ptr<Recorder>> recorders_;
  bool torn_down_ = false;
};

}  // namespace cairn::tls::testing
