// The local control socket under arbitrary bytes: a real ControlServer on a real
// Unix socket and libuv loop, in front of a journal (in-memory LevelDB) that is
// the source of "fz-other" and holds a prefix of fz-dev. A client writes the
// input, half-closes and reads until the server hangs up; then the server closes.
// Properties: the server answers or hangs up, never crashes or hangs, and closes
// with nothing left on the loop; the journal still verifies.
#include <uv.h>

#include <string>

#include "base/check.h"
#include "fuzz_entries.h"
#include "fuzz_fixture.h"
#include "node/control_server_uv.h"
#include "node/loop_post_uv.h"

namespace cairn::fuzz {
namespace {

struct Client {
  uv_pipe_t pipe{};
  uv_connect_t connect{};
  uv_write_t write{};
  uv_shutdown_t shutdown{};
  std::string out;
  size_t received = 0;
  bool closed = false;
  char buffer[64 << 10];
};

void CloseClient(Client* c) {
  if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&c->pipe))) return;
  uv_close(reinterpret_cast<uv_handle_t*>(&c->pipe),
           [](uv_handle_t* h) { static_cast<Client*>(h->data)->closed = true; });
}

void OnRead(uv_stream_t* s, ssize_t n, const uv_buf_t*) {
  auto* c = static_cast<Client*>(s->data);
  if (n < 0) return CloseClient(c);
  c->received += static_cast<size_t>(n);
}

void OnConnect(uv_connect_t* req, int status) {
  auto* c = static_cast<Client*>(req->data);
  if (status < 0) return CloseClient(c);
  auto* stream = reinterpret_cast<uv_stream_t*>(&c->pipe);
  uv_buf_t buf = uv_buf_init(c->out.data(), static_cast<unsigned>(c->out.size()));
  c->write.data = c;
  uv_write(&c->write, stream, &buf, 1, [](uv_write_t*, int) {});
  c->shutdown.data = c;
  uv_shutdown(&c->shutdown, stream, [](uv_shutdown_t*, int) {});
  uv_read_start(
      stream,
      [](uv_handle_t* h, size_t, uv_buf_t* b) {
        auto* cl = static_cast<Client*>(h->data);
        *b = uv_buf_init(cl->buffer, sizeof(cl->buffer));
      },
      OnRead);
}

const std::string& SocketPath() {
  static const std::string path =
      "/tmp/cairn-fuzz-control-" + std::to_string(::getpid()) + ".sock";
  return path;
}

// Runs the loop one turn at a time until `done()` holds.
template <typename Done>
void RunUntil(uv_loop_t* loop, Done done) {
  while (!done()) uv_run(loop, UV_RUN_ONCE);
}

}  // namespace

// data[0]: the genuine prefix of fz-dev the journal holds (low 5 bits); the rest
// is what the client writes: frames of ControlRequest, or anything at all.
int FuzzControl(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  Replica journal(/*source=*/true);
  const Fixture& f = Fixture::Get();
  if (size_t n = std::min<size_t>(data[0] & 31, f.records.size()); n > 0) {
    std::vector<wire::Record> head(f.records.begin(), f.records.begin() + n);
    CHECK(journal->Apply(kFuzzDevice, f.cert_der, std::move(head)).ok());
  }
  uv_loop_t loop;
  CHECK(uv_loop_init(&loop) == 0);
  {
    node::LoopPost post(&loop);
    CHECK(post.Init().ok());
    node::ControlServer server(&loop, &*journal, &post, [] {
      wire::ControlStatusReply r;
      r.set_node("fuzz");
      return r;
    });
    Status listening = server.Listen(SocketPath());
    CHECK(listening.ok()) << listening.ToString();

    auto client = std::make_unique<Client>();
    client->out.assign(reinterpret_cast<const char*>(data) + 1, size - 1);
    CHECK(uv_pipe_init(&loop, &client->pipe, 0) == 0);
    client->pipe.data = client.get();
    client->connect.data = client.get();
    uv_pipe_connect(&client->connect, &client->pipe, SocketPath().c_str(), OnConnect);
    RunUntil(&loop, [&] { return client->closed; });

    bool server_closed = false, post_closed = false;
    server.Close([&] { server_closed = true; });
    RunUntil(&loop, [&] { return server_closed; });
    post.Close([&] { post_closed = true; });
    RunUntil(&loop, [&] { return post_closed; });
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0) << "the control server left handles open";
  for (const auto& s : journal->Catalogue()) {
    Status v = journal->Verify(s.device);
    CHECK(v.ok()) << v.ToString();
  }
  return 0;
}

}  // namespace cairn::fuzz
