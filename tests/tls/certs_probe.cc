// tls_certs_probe: loads files made by certs/*.sh into src/tls, for certs_test.sh.
//   tls_certs_probe CA CERT KEY                      load one context
//   tls_certs_probe CA CERT KEY PEER_CERT PEER_KEY   also handshake on loopback, CERT
//                                                    serving and PEER_CERT connecting
// Prints what each side saw; exits 1 with the reason on any failure.
#include <uv.h>

#include <cstdio>
#include <memory>
#include <string>

#include "tls/context.h"
#include "tls/endpoint_uv.h"

namespace cairn::tls {
namespace {

std::shared_ptr<const Context> LoadOrDie(const char* ca, const char* cert,
                                         const char* key) {
  Result<std::shared_ptr<const Context>> ctx = Context::FromFiles({ca, cert, key});
  if (!ctx.ok()) {
    fprintf(stderr, "load failed: %s\n", ctx.status().ToString().c_str());
    exit(1);
  }
  printf("loaded %s: node id %s\n", cert, (*ctx)->node_id().c_str());
  return *ctx;
}

int Handshake(std::shared_ptr<const Context> server_ctx,
              std::shared_ptr<const Context> client_ctx) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::string server_saw, client_saw, failure;
  int closed = 0;
  {
    Endpoint server(&loop, server_ctx), client(&loop, client_ctx);
    ConnectionCallbacks s, c;
    s.on_open = [&](Connection& conn) { server_saw = conn.peer_id(); };
    c.on_open = [&](Connection& conn) {
      client_saw = conn.peer_id();
      conn.Close("probe done");
    };
    auto fail = [&](Connection&, const CloseReason& r) {
      if (r.kind != CloseReason::Kind::kLocal &&
          r.kind != CloseReason::Kind::kPeerClosed) {
        failure = r.ToString();
      }
    };
    s.on_close = fail;
    c.on_close = fail;
    Result<int> port = server.Listen("127.0.0.1", 0, s);
    if (!port.ok() || !client.Connect("127.0.0.1", *port, c).ok()) return 1;
    // Bounded by the endpoints' own connect, handshake and close timeouts.
    while ((server_saw.empty() || client_saw.empty()) && failure.empty() &&
           uv_run(&loop, UV_RUN_ONCE) != 0) {
    }
    server.Close([&] { ++closed; });
    client.Close([&] { ++closed; });
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  int leaked = uv_loop_close(&loop);
  printf("server saw %s; client saw %s\n", server_saw.c_str(), client_saw.c_str());
  if (!failure.empty() || server_saw.empty() || client_saw.empty() || closed != 2 ||
      leaked) {
    fprintf(stderr, "handshake failed: %s\n", failure.c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace cairn::tls

int main(int argc, char** argv) {
  if (argc != 4 && argc != 6) {
    fprintf(stderr, "usage: %s CA CERT KEY [PEER_CERT PEER_KEY]\n", argv[0]);
    return 2;
  }
  auto server = cairn::tls::LoadOrDie(argv[1], argv[2], argv[3]);
  if (argc == 4) return 0;
  auto client = cairn::tls::LoadOrDie(argv[1], argv[4], argv[5]);
  return cairn::tls::Handshake(server, client);
}
