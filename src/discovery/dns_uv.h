// DnsResolver: resolves DNS seed names with c-ares on a libuv loop, never blocking
// it. For a name N it asks for the SRV records of `_cairn._tcp.N` first and resolves
// each target (A/AAAA) with the SRV port; when N has no SRV record it resolves the
// A/AAAA records of N itself with the default port. The answer is a list of
// "HOST:PORT" addresses, or an error text; failures are answers, never fatal.
//
// c-ares is driven the libuv way: one uv_poll_t per c-ares socket, opened and
// closed through c-ares's socket-state callback, and one uv_timer_t armed from
// ares_timeout(); both feed ares_process_fd().
//
// Thread-safety: the loop thread only.
// Ownership: owns its c-ares channel and its handles. The loop must outlive it.
// REQUIRES before destruction: Close() was called and its `done` has run. Callbacks
// of Resolve must not destroy the resolver.
#pragma once

#include <ares.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

namespace cairn::discovery {

class DnsResolver {
 public:
  using Callback = std::function<void(const std::string& name,
                                      const std::vector<std::string>& addresses,
                                      const std::string& error)>;
  struct Config {
    std::string server;  // "IP:PORT" of the DNS server; empty: the system's resolv.conf
    int default_port = 0;
    int timeout_ms = 1000;  // per try
    int tries = 2;
    size_t max_addresses = 32;
  };

  static Result<std::unique_ptr<DnsResolver>> Create(uv_loop_t* loop, Config config);
  // Use Create.
  class Key {
    friend class DnsResolver;
    Key() = default;
  };
  DnsResolver(Key, uv_loop_t* loop, Config config);
  ~DnsResolver();
  DnsResolver(const DnsResolver&) = delete;
  DnsResolver& operator=(const DnsResolver&) = delete;

  // Starts resolving `name`; `done` runs once on the loop with the answer (not
  // after Close).
  void Resolve(const std::string& name, Callback done);
  // Cancels what is pending (no callbacks) and closes every handle; `done` runs on
  // the loop once they are closed.
  void Close(std::function<void()> done);

  // Public for the C callbacks in dns_uv.cc.
  struct Request;
  struct Poll;
  void OnSrv(Request* req, int status, const unsigned char* answer, int length);
  void OnAddresses(Request* req, int port, int status, ares_addrinfo* result);
  void OnSocketState(ares_socket_t fd, bool readable, bool writable);
  void OnPoll(Poll* poll, int status, int events);
  void OnTimer();
  void OnHandleClosed();

 private:
  void LookUp(Request* req, const std::string& host, int port);
  void Finish(Request* req);
  void ArmTimer();
  void MaybeDone();

  uv_loop_t* loop_;
  Config config_;
  ares_channel channel_ = nullptr;
  uv_timer_t timer_;
  std::map<ares_socket_t, Poll*> polls_;  // each owned by its handle until closed
  std::map<Request*, std::unique_ptr<Request>> requests_;
  bool closing_ = false;
  int handles_open_ = 0;
  std::function<void()> done_;
};

}  // namespace cairn::discovery
