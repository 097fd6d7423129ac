#include "node/control_server_uv.h"

#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <utility>
#include <vector>

#include "base/check.h"
#include "node/control_client_state.h"
#include "node/log.h"
#include "wire/frame.h"

namespace cairn::node {
namespace {

struct WriteReq {
  uv_write_t req{};
  std::string bytes;
};

std::string UvError(const char* what, int rc) {
  return std::string(what) + ": " + uv_strerror(rc);
}

}  // namespace

ControlServer::ControlServer(uv_loop_t* loop, journal::Journal* journal, LoopPost* post,
                             StatusProvider status)
    : loop_(loop), journal_(journal), post_(post), status_(std::move(status)) {}

ControlServer::~ControlServer() {
  CHECK(!listening_ && clients_.empty() && pending_ == 0)
      << "ControlServer destroyed before Close finished";
}

Status ControlServer::Listen(const std::string& path) {
  sockaddr_un probe{};
  if (path.size() >= sizeof(probe.sun_path)) {
    return Status::InvalidArgument("control socket path " + path + " is longer than " +
                                   std::to_string(sizeof(probe.sun_path) - 1) +
                                   " bytes; use a shorter --data path");
  }
  for (const auto& s : journal_->Catalogue()) known_devices_.insert(s.device);
  unlink(path.c_str());  // a stale socket of a dead cairnd; we hold the data lock
  int rc = uv_pipe_init(loop_, &listener_, 0);
  if (rc != 0) return Status::IOError(UvError("uv_pipe_init", rc));
  listener_.data = this;
  listening_ = true;
  mode_t old = umask(0177);  // the socket file is born 0600
  rc = uv_pipe_bind(&listener_, path.c_str());
  umask(old);
  if (rc == 0) rc = chmod(path.c_str(), 0600) == 0 ? 0 : UV_EPERM;
  if (rc == 0)
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 64, OnConnection);
  if (rc != 0) {
    return Status::IOError("cannot listen on control socket " + path + ": " +
                           uv_strerror(rc));
  }
  CAIRN_LOG(kInfo) << "control: listening on " << path;
  return Status::Ok();
}

void ControlServer::OnConnection(uv_stream_t* server, int status) {
  auto* self = static_cast<ControlServer*>(server->data);
  if (status != 0) {
    CAIRN_LOG(kWarn) << "control: accept failed: " << uv_strerror(status);
    return;
  }
  self->Accept();
}

void ControlServer::Accept() {
  auto c = std::make_unique<Client>();
  c->server = this;
  c->id = next_id_++;
  uv_pipe_init(loop_, &c->pipe, 0);
  c->pipe.data = c.get();
  Client& ref = *c;
  clients_.emplace(c->id, std::move(c));
  if (uv_accept(reinterpret_cast<uv_stream_t*>(&listener_),
                reinterpret_cast<uv_stream_t*>(&ref.pipe)) != 0 ||
      closing_ || clients_.size() > max_clients_) {
    CloseClient(ref);
    return;
  }
  UpdateReading(ref);
}

void ControlServer::UpdateReading(Client& c) {
  bool want = !c.closing && !closing_ && c.in_flight < kMaxInFlight &&
              c.queued_bytes < kWriteHighWaterBytes;
  auto* stream = reinterpret_cast<uv_stream_t*>(&c.pipe);
  if (want && !c.reading) {
    uv_read_start(
        stream,
        [](uv_handle_t* h, size_t, uv_buf_t* buf) {
          auto* cl = static_cast<Client*>(h->data);
          *buf = uv_buf_init(cl->read_buffer.get(), Client::kReadBufferBytes);
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
          auto* cl = static_cast<Client*>(s->data);
          cl->server->OnRead(*cl, n, buf);
        });
  } else if (!want && c.reading) {
    uv_read_stop(stream);
  }
  c.reading = want;
}

void ControlServer::OnRead(Client& c, ssize_t n, const uv_buf_t* buf) {
  if (n < 0) {
    if (n != UV_EOF) CAIRN_LOG(kDebug) << "control: read: " << uv_strerror(n);
    CloseClient(c);
    return;
  }
  c.in.append(buf->base, static_cast<size_t>(n));
  Settle(c);
}

// Serves whole frames received so far while the client has room; closes it on
// a malformed frame; pauses or resumes reading.
void ControlServer::Settle(Client& c) {
  if (c.closing || c.settling) return;  // the outer call goes on
  c.settling = true;
  while (!closing_ && c.in_flight < kMaxInFlight) {
    auto d = wire::DecodeFrame(c.in);
    if (d.state == wire::DecodeState::kNeedMore) break;
    wire::ControlRequest req;
    if (d.state == wire::DecodeState::kMalformed ||
        !req.ParseFromArray(d.payload.data(), static_cast<int>(d.payload.size()))) {
      CAIRN_LOG(kWarn) << "control: closing a client: bad request frame " << d.reason;
      c.settling = false;
      CloseClient(c);
      return;
    }
    c.in.erase(0, d.consumed);
    ++c.in_flight;
    Dispatch(c, std::move(req));
    if (c.closing) break;
  }
  c.settling = false;
  if (c.closing) return;
  if (closing_ && c.in_flight == 0 && c.tails.empty()) {
    CloseClient(c);
    return;
  }
  UpdateReading(c);
}

ControlServer::SendResult ControlServer::Send(uint64_t client,
                                              const wire::ControlReply& reply) {
  auto it = clients_.find(client);
  if (it == clients_.end() || it->second->closing) return SendResult::kGone;
  Client& c = *it->second;
  auto w = std::make_unique<WriteReq>();
  Status s = wire::EncodeFrame(reply.SerializeAsString(), &w->bytes,
                               wire::kMaxControlReplyBytes);
  if (!s.ok()) {  // the client gets an error in its place, not a closed socket
    CAIRN_LOG(kError) << "control: reply too large: " << s.ToString();
    wire::ControlReply refused = ErrorReply(
        reply.id(), Status::ResourceExhausted("the reply is too large: " + s.message()));
    refused.set_done(reply.done());
    w->bytes.clear();
    CHECK(wire::EncodeFrame(refused.SerializeAsString(), &w->bytes).ok());
  }
  uv_buf_t b = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
  w->req.data = &c;
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&c.pipe), &b, 1,
                    [](uv_write_t* r, int status) {
                      std::unique_ptr<WriteReq> done(reinterpret_cast<WriteReq*>(r));
                      auto* cl = static_cast<Client*>(r->data);
                      cl->queued_bytes -= done->bytes.size();
                      if (status != 0) {
                        cl->server->CloseClient(*cl);
                        return;
                      }
                      if (cl->queued_bytes < kWriteHighWaterBytes / 2) {
                        std::vector<std::shared_ptr<Tail>> tails;  // Resume may end one
                        for (auto& [rid, tail] : cl->tails) tails.push_back(tail);
                        for (auto& tail : tails) tail->Resume();
                      }
                      cl->server->UpdateReading(*cl);
                    });
  if (rc != 0) {
    CloseClient(c);
    return SendResult::kGone;
  }
  c.queued_bytes += w->bytes.size();
  w.release();  // freed by the write callback
  return c.queued_bytes >= kWriteHighWaterBytes ? SendResult::kCongested
                                                : SendResult::kOk;
}

// The final reply to a request that counted as in flight.
void ControlServer::Finish(Client& c, uint64_t id, const wire::ControlReply& reply) {
  (void)id;
  CHECK(c.in_flight > 0);
  --c.in_flight;
  Send(c.id, reply);
  Settle(c);
}

void ControlServer::Reply(uint64_t client, const wire::ControlReply& reply) {
  auto it = clients_.find(client);
  if (it == clients_.end()) return;
  Finish(*it->second, reply.id(), reply);
}

void ControlServer::Offload(std::function<void()> work, std::function<void()> after) {
  ++pending_;
  Status s = QueueWork(loop_, std::move(work), [this, after = std::move(after)] {
    after();
    --pending_;
    MaybeDone();
  });
  CHECK(s.ok()) << s.ToString();
}

void ControlServer::CloseClient(Client& c) {
  if (c.closing) return;
  c.closing = true;
  for (auto& [rid, tail] : c.tails) tail->Cancel();
  c.tails.clear();
  c.watches.clear();
  uv_close(reinterpret_cast<uv_handle_t*>(&c.pipe), [](uv_handle_t* h) {
    auto* cl = static_cast<Client*>(h->data);
    cl->server->OnClientClosed(cl->id);
  });
}

void ControlServer::OnClientClosed(uint64_t id) {
  clients_.erase(id);
  MaybeDone();
}

void ControlServer::Close(std::function<void()> done) {
  if (closing_) return;
  closing_ = true;
  done_ = std::move(done);
  if (listening_) {
    ++pending_;
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), [](uv_handle_t* h) {
      auto* self = static_cast<ControlServer*>(h->data);
      self->listening_ = false;
      --self->pending_;
      self->MaybeDone();
    });
  }
  std::vector<Client*> all;
  for (auto& [id, c] : clients_) all.push_back(c.get());
  for (Client* c : all) {
    for (auto& [rid, tail] : c->tails) tail->Cancel();
    c->tails.clear();
    c->watches.clear();
    Settle(*c);  // closes it now, or after its last in-flight reply
  }
  MaybeDone();
}

void ControlServer::MaybeDone() {
  if (!closing_ || listening_ || pending_ > 0 || !clients_.empty() || !done_) return;
  std::move(done_)();
  done_ = nullptr;
}

}  // namespace cairn::node
