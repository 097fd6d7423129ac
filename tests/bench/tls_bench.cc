// Framed message throughput over the real TLS transport (src/tls) on loopback, with
// OpenSSL's AES-128-GCM on buffers of the same sizes measured in the same run as the
// reference (what `openssl speed -evp aes-128-gcm` measures). These machines are
// shared and noisy: compare ratios, not absolute figures.
//
// TlsThroughput/bytes:<n>: one libuv loop in the benchmark thread, a server and a
// client Endpoint on it, connected once (handshake outside the timed loop). Each
// iteration the client sends a window of Envelopes (an `events` message whose one
// Record makes the serialized size about <n> bytes), pausing at the high-water mark
// and resuming when drained, and the loop runs until the server has decoded them all.
// AesGcmReference/bytes:<n>: encrypts one <n>-byte buffer per iteration (fresh IV,
// tag included).
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <uv.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "testutil/pki.h"
#include "tls/connection_uv.h"
#include "tls/context.h"
#include "tls/endpoint_uv.h"
#include "tls/transport.h"
#include "wire/schema.h"

namespace cairn::tls {
namespace {

constexpr uint64_t kWatchdogMs = 10'000;

// An Envelope carrying one event whose serialized size is about `target` bytes.
std::string SerializedEventsOfSize(size_t target) {
  wire::Envelope e;
  wire::Events* events = e.mutable_events();
  events->set_device("bench-device");
  wire::Record* r = events->add_records();
  r->set_seq(1);
  r->set_time_us(1'700'000'000'000'000);
  r->set_type("bench");
  size_t payload = target;
  for (int i = 0; i < 4; ++i) {
    r->set_payload(std::string(payload, 'p'));
    size_t size = e.ByteSizeLong();
    if (size == target) break;
    if (size > target) {
      size_t over = size - target;
      payload = over < payload ? payload - over : 0;
    } else {
      payload += target - size;
    }
  }
  r->set_payload(std::string(payload, 'p'));
  return e.SerializeAsString();
}

// Two endpoints on one loop, a client connection to the server, and a watchdog.
class Rig {
 public:
  Rig() {
    uv_loop_init(&loop_);
    uv_timer_init(&loop_, &watchdog_);
    watchdog_.data = this;
  }

  ~Rig() {
    TearDown();
    uv_close(reinterpret_cast<uv_handle_t*>(&watchdog_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&loop_);
    if (rc != 0) std::fprintf(stderr, "tls_bench: uv_loop_close: %s\n", uv_strerror(rc));
  }

  Rig(const Rig&) = delete;
  Rig& operator=(const Rig&) = delete;

  // Connects a client to a server; "" on success, else why not.
  std::string SetUp() {
    auto server_ctx = NodeContext("bench-srv");
    auto client_ctx = NodeContext("bench-cli");
    if (!server_ctx || !client_ctx) return error_;
    Options o;
    server_ = std::make_unique<Endpoint>(&loop_, server_ctx, o);
    client_ = std::make_unique<Endpoint>(&loop_, client_ctx, o);

    ConnectionCallbacks server_cb;
    server_cb.on_open = [this](Connection& c) { server_conn_ = &c; };
    server_cb.on_message = [this](Connection&, wire::Envelope&&) { ++received_; };
    server_cb.on_close = [this](Connection&, const CloseReason& why) {
      server_conn_ = nullptr;
      if (!tearing_down_ && error_.empty()) error_ = "server: " + why.ToString();
    };
    Result<int> port = server_->Listen("127.0.0.1", 0, server_cb);
    if (!port.ok()) return "listen: " + port.status().ToString();

    ConnectionCallbacks client_cb;
    client_cb.on_open = [this](Connection&) { client_open_ = true; };
    client_cb.on_drained = [this](Connection&) { Pump(); };
    client_cb.on_close = [this](Connection&, const CloseReason& why) {
      conn_ = nullptr;
      if (!tearing_down_ && error_.empty()) error_ = "client: " + why.ToString();
    };
    Result<Connection*> c = client_->Connect("127.0.0.1", port.value(), client_cb);
    if (!c.ok()) return "connect: " + c.status().ToString();
    conn_ = c.value();
    if (!RunUntil([this] { return client_open_ && server_conn_ != nullptr; })) {
      return error_.empty() ? "handshake did not complete" : error_;
    }
    return "";
  }

  // Sends `count` copies of `message` (respecting back-pressure) and runs the loop
  // until the server has received them; "" on success, else why not.
  std::string SendWindow(const std::string& message, size_t count) {
    message_ = &message;
    to_send_ = count;
    target_ = received_ + count;
    Pump();
    if (!RunUntil([this] { return received_ >= target_; })) {
      return error_.empty() ? "window not received" : error_;
    }
    return "";
  }

 private:
  std::shared_ptr<const Context> NodeContext(const std::string& cn) {
    testutil::Issued issued = pki_.Issue(cn);
    auto ctx = Context::FromPem({pki_.ca_cert_pem(), issued.cert_pem, issued.key_pem});
    if (!ctx.ok()) {
      error_ = "context " + cn + ": " + ctx.status().ToString();
      return nullptr;
    }
    return ctx.value();
  }

  // Sends what is left of the window until the queue passes the high-water mark;
  // on_drained calls it again.
  void Pump() {
    while (to_send_ > 0 && conn_ != nullptr && !conn_->above_high_water()) {
      Status s = conn_->SendSerialized(*message_);
      if (!s.ok()) {
        if (error_.empty()) error_ = "send: " + s.ToString();
        return;
      }
      --to_send_;
    }
  }

  // Runs the loop until `done()` holds, an error is recorded or the watchdog fires.
  bool RunUntil(const std::function<bool()>& done) {
    fired_ = false;
    uv_timer_start(
        &watchdog_,
        [](uv_timer_t* t) {
          Rig* self = static_cast<Rig*>(t->data);
          self->fired_ = true;
          uv_stop(&self->loop_);
        },
        kWatchdogMs, 0);
    while (!done() && !fired_ && error_.empty()) uv_run(&loop_, UV_RUN_ONCE);
    uv_timer_stop(&watchdog_);
    return done();
  }

  void TearDown() {
    tearing_down_ = true;
    if (conn_ != nullptr) conn_->Close("bench done");
    int pending = 0;
    for (Endpoint* ep : {client_.get(), server_.get()}) {
      if (ep == nullptr) continue;
      ++pending;
      ep->Close([&pending] { --pending; });
    }
    std::string saved = error_;
    error_.clear();  // RunUntil stops at errors; closing must still finish
    bool closed = RunUntil([&pending] { return pending == 0; });
    error_ = saved;
    if (closed) {
      client_.reset();
      server_.reset();
    } else {
      // Destroying an Endpoint with open handles is not allowed: leak it instead.
      std::fprintf(stderr, "tls_bench: endpoints did not close\n");
      (void)client_.release();
      (void)server_.release();
    }
  }

  uv_loop_t loop_;
  uv_timer_t watchdog_;
  bool fired_ = false;
  testutil::TestPki pki_;
  std::unique_ptr<Endpoint> server_;
  std::unique_ptr<Endpoint> client_;
  Connection* conn_ = nullptr;         // the client's connection
  Connection* server_conn_ = nullptr;  // the server's side of it
  bool client_open_ = false;
  bool tearing_down_ = false;
  std::string error_;
  const std::string* message_ = nullptr;
  size_t to_send_ = 0;
  size_t received_ = 0;
  size_t target_ = 0;
};

void ReportRates(benchmark::State& state, size_t messages, size_t bytes) {
  state.counters["msgs/s"] =
      benchmark::Counter(static_cast<double>(messages), benchmark::Counter::kIsRate);
  state.counters["MB/s"] =
      benchmark::Counter(static_cast<double>(bytes) / 1e6, benchmark::Counter::kIsRate);
}

void BM_TlsThroughput(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  const size_t window = size <= 1024 ? 64 : 16;
  const std::string message = SerializedEventsOfSize(size);
  Rig rig;
  std::string error = rig.SetUp();
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  size_t messages = 0;
  for (auto _ : state) {
    error = rig.SendWindow(message, window);
    if (!error.empty()) {
      state.SkipWithError(error.c_str());
      break;
    }
    messages += window;
  }
  state.SetLabel("window " + std::to_string(window) + ", " +
                 std::to_string(message.size()) + " B serialized");
  ReportRates(state, messages, messages * message.size());
}
BENCHMARK(BM_TlsThroughput)
    ->ArgNames({"bytes"})
    ->Arg(100)
    ->Arg(65536)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_AesGcmReference(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  std::vector<unsigned char> in(size, 'p');
  std::vector<unsigned char> out(size + 16);
  unsigned char key[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  unsigned char iv[12] = {};
  unsigned char tag[16];
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr ||
      EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), nullptr, key, iv) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    state.SkipWithError("EVP AES-128-GCM init failed");
    return;
  }
  const int len = static_cast<int>(size);
  uint64_t counter = 0;
  size_t messages = 0;
  for (auto _ : state) {
    ++counter;
    std::memcpy(iv + 4, &counter, sizeof(counter));
    int n = 0;
    int final_n = 0;
    if (EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, iv) != 1 ||
        EVP_EncryptUpdate(ctx, out.data(), &n, in.data(), len) != 1 ||
        EVP_EncryptFinal_ex(ctx, out.data() + n, &final_n) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, sizeof(tag), tag) != 1) {
      state.SkipWithError("EVP AES-128-GCM encrypt failed");
      break;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::DoNotOptimize(tag);
    benchmark::ClobberMemory();
    ++messages;
  }
  EVP_CIPHER_CTX_free(ctx);
  ReportRates(state, messages, messages * size);
}
BENCHMARK(BM_AesGcmReference)
    ->ArgNames({"bytes"})
    ->Arg(100)
    ->Arg(65536)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace cairn::tls

BENCHMARK_MAIN();
