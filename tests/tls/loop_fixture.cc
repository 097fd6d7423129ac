#include "tls/loop_fixture.h"

#include "base/check.h"

namespace cairn::tls::testing {

// ---------------------------------------------------------------- Recorder

ConnectionCallbacks Recorder::Callbacks() {
  ConnectionCallbacks cb;
  cb.on_open = [this](Connection& c) {
    opened.push_back(&c);
    peer_ids.push_back(c.peer_id());
  };
  cb.on_message = [this](Connection& c, wire::Envelope&& m) {
    if (echo) {
      EXPECT_TRUE(c.Send(m).ok());
    }
    messages.push_back(std::move(m));
  };
  cb.on_high_water = [this](Connection&) { ++high_water; };
  cb.on_drained = [this](Connection&) { ++drained; };
  cb.on_close = [this](Connection&, const CloseReason& r) { closes.push_back(r); };
  return cb;
}

std::string Recorder::FirstClose() const {
  return closes.empty() ? "" : closes.front().ToString();
}

// ---------------------------------------------------------------- RawClient

struct RawClient::Req {
  uv_write_t req;
  std::string data;
};

RawClient::RawClient(uv_loop_t* loop, int port) {
  CHECK(uv_tcp_init(loop, &tcp_) == 0);
  tcp_.data = this;
  sockaddr_in addr;
  CHECK(uv_ip4_addr("127.0.0.1", port, &addr) == 0);
  int rc = uv_tcp_connect(&connect_, &tcp_, reinterpret_cast<sockaddr*>(&addr),
                          [](uv_connect_t* req, int status) {
                            auto* self = static_cast<RawClient*>(req->handle->data);
                            if (status < 0 || self->closing_) {
                              self->ended_ = true;
                              return;
                            }
                            self->connected_ = true;
                            for (std::string& s : self->pending_)
                              self->Write(std::move(s));
                            self->pending_.clear();
                            uv_read_start(
                                req->handle,
                                [](uv_handle_t* h, size_t, uv_buf_t* buf) {
                                  auto* c = static_cast<RawClient*>(h->data);
                                  *buf = uv_buf_init(c->buffer_, sizeof(c->buffer_));
                                },
                                [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
                                  auto* c = static_cast<RawClient*>(s->data);
                                  if (n > 0) c->received_.append(buf->base, n);
                                  if (n < 0) c->ended_ = true;
                                  if (n < 0) uv_read_stop(s);
                                });
                          });
  CHECK(rc == 0) << uv_strerror(rc);
}

RawClient::~RawClient() { CHECK(closed_) << "RawClient freed before its handle closed"; }

void RawClient::Write(std::string bytes) {
  if (!connected_) {
    pending_.push_back(std::move(bytes));
    return;
  }
  auto req = std::make_unique<Req>();
  req->data = std::move(bytes);
  req->req.data = req.get();
  uv_buf_t buf = uv_buf_init(req->data.data(), static_cast<unsigned>(req->data.size()));
  if (uv_write(&req->req, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1,
               [](uv_write_t* w, int) {
                 std::unique_ptr<Req> done(static_cast<Req*>(w->data));
               }) == 0) {
    req.release();
  }
}

void RawClient::Close() {
  if (closing_) return;
  closing_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_),
           [](uv_handle_t* h) { static_cast<RawClient*>(h->data)->closed_ = true; });
}

// ---------------------------------------------------------------- EnvelopeOfSize

namespace {

// Candidate shapes whose size grows with one string field of length k.
wire::Envelope Shape(int shape, size_t k) {
  wire::Envelope e;
  std::string s(k, 'x');
  if (shape == 0) e.mutable_goodbye()->set_reason(s);
  if (shape == 1) {
    e.mutable_subscribe()->set_device(s);
    e.mutable_subscribe()->set_from(1);
  }
  if (shape == 2) {
    e.mutable_subscribe()->set_device(s);
    e.mutable_subscribe()->set_from(1 << 20);
  }
  return e;
}

}  // namespace

wire::Envelope EnvelopeOfSize(size_t bytes) {
  if (bytes == 0) return wire::Envelope();
  if (bytes == 2) {
    wire::Envelope e;
    e.mutable_ping();
    return e;
  }
  for (int shape = 0; shape < 3; ++shape) {
    size_t overhead = Shape(shape, bytes).ByteSizeLong() - bytes;
    size_t base = bytes > overhead + 3 ? bytes - overhead - 3 : 0;
    for (size_t k = base; k <= base + 6; ++k) {
      wire::Envelope e = Shape(shape, k);
      if (e.ByteSizeLong() == bytes) return e;
    }
  }
  CHECK(false) << "no envelope of " << bytes << " bytes";
  return wire::Envelope();
}

// ---------------------------------------------------------------- LoopTest

LoopTest::LoopTest() {
  CHECK(uv_loop_init(&loop_) == 0);
  CHECK(uv_timer_init(&loop_, &watchdog_) == 0);
}

LoopTest::~LoopTest() { CHECK(torn_down_) << "LoopTest::TearDown not run"; }

void LoopTest::TearDown() {
  int pending = 0;
  for (auto& ep : endpoints_) {
    ++pending;
    ep->Close([&pending] { --pending; });
  }
  for (auto& raw : raw_clients_) raw->Close();
  auto all_closed = [&] {
    for (auto& raw : raw_clients_) {
      if (!raw->closed()) return false;
    }
    return pending == 0;
  };
  EXPECT_TRUE(RunUntil(all_closed)) << "endpoints did not close";
  if (all_closed()) {
    endpoints_.clear();
    raw_clients_.clear();
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&watchdog_), nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop_), 0) << "handles leaked";
  torn_down_ = true;
}

bool LoopTest::RunUntil(const std::function<bool()>& done, uint64_t timeout_ms) {
  bool fired = false;
  watchdog_.data = &fired;
  uv_timer_start(
      &watchdog_, [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; }, timeout_ms,
      0);
  while (!done() && !fired) uv_run(&loop_, UV_RUN_ONCE);
  uv_timer_stop(&watchdog_);
  return done();
}

std::shared_ptr<const Context> LoopTest::NodeContext(const std::string& cn) {
  testutil::Issued id = pki_.Issue(cn);
  Result<std::shared_ptr<const Context>> ctx =
      Context::FromPem({pki_.ca_cert_pem(), id.cert_pem, id.key_pem});
  CHECK(ctx.ok()) << ctx.status().ToString();
  return *ctx;
}

Endpoint* LoopTest::MakeEndpoint(std::shared_ptr<const Context> context,
                                 Options options) {
  endpoints_.push_back(std::make_unique<Endpoint>(&loop_, std::move(context), options));
  return endpoints_.back().get();
}

int LoopTest::Listen(Endpoint* endpoint, ConnectionCallbacks callbacks) {
  Result<int> port = endpoint->Listen("127.0.0.1", 0, std::move(callbacks));
  CHECK(port.ok()) << port.status().ToString();
  return *port;
}

RawClient* LoopTest::MakeRawClient(int port) {
  raw_clients_.push_back(std::make_unique<RawClient>(&loop_, port));
  return raw_clients_.back().get();
}

Recorder& LoopTest::NewRecorder() {
  recorders_.push_back(std::make_unique<Recorder>());
  return *recorders_.back();
}

void LoopTest::ExpectServesGoodClient(int port) {
  Endpoint* client = MakeEndpoint(NodeContext("good-client"), FastOptions());
  Recorder& rec = NewRecorder();
  Result<Connection*> c = client->Connect("127.0.0.1", port, rec.Callbacks());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE(RunUntil([&] { return !rec.opened.empty() || !rec.closes.empty(); }));
  ASSERT_EQ(rec.opened.size(), 1u) << rec.FirstClose();
  wire::Envelope ping;
  ping.mutable_ping()->set_nonce(42);
  ASSERT_TRUE((*c)->Send(ping).ok());
  ASSERT_TRUE(RunUntil([&] { return !rec.messages.empty() || !rec.closes.empty(); }))
      << "no echo from the server";
  ASSERT_EQ(rec.messages.size(), 1u) << rec.FirstClose();
  EXPECT_EQ(rec.messages[0].ping().nonce(), 42u);
  (*c)->Close("done");
  ASSERT_TRUE(RunUntil([&] { return client->connection_count() == 0; }));
}

Options LoopTest::FastOptions() {
  Options o;
  o.connect_timeout_ms = 2'000;
  o.handshake_timeout_ms = 200;
  o.close_timeout_ms = 200;
  return o;
}

}  // namespace cairn::tls::testing
