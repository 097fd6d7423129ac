#include "node/control_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "wire/frame.h"

namespace cairn::node {

Result<std::unique_ptr<ControlClient>> ControlClient::Connect(
    const std::string& data_dir) {
  std::string path = data_dir + "/cairn.sock";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return Status::InvalidArgument("control socket path " + path + " is too long");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IOError(std::string("socket: ") + strerror(errno));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    close(fd);
    std::string why = err == ENOENT || err == ECONNREFUSED
                          ? "no cairnd is running with --data " + data_dir
                          : "cannot connect to " + path;
    return Status::Unavailable(why + " (" + path + ": " + strerror(err) + ")");
  }
  return std::make_unique<ControlClient>(fd);
}

ControlClient::~ControlClient() { close(fd_); }

Result<uint64_t> ControlClient::Send(wire::ControlRequest request) {
  uint64_t id = next_id_++;
  request.set_id(id);
  std::string frame;
  CAIRN_RETURN_IF_ERROR(wire::EncodeFrame(request.SerializeAsString(), &frame));
  size_t off = 0;
  while (off < frame.size()) {
    ssize_t n = send(fd_, frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Status::Unavailable(std::string("the node went away: ") + strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
  return id;
}

Result<wire::ControlReply> ControlClient::Receive() {
  char buf[64 << 10];
  for (;;) {
    auto d = wire::DecodeFrame(in_, wire::kMaxControlReplyBytes);
    if (d.state == wire::DecodeState::kMalformed) {
      return Status::Corruption("bad reply from the node: " + d.reason);
    }
    if (d.state == wire::DecodeState::kComplete) {
      wire::ControlReply reply;
      bool ok =
          reply.ParseFromArray(d.payload.data(), static_cast<int>(d.payload.size()));
      in_.erase(0, d.consumed);
      if (!ok) return Status::Corruption("bad reply from the node: does not parse");
      return reply;
    }
    ssize_t n = read(fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return Status::Unavailable(std::string("the node went away: ") + strerror(errno));
    if (n == 0) return Status::Unavailable("the node closed the connection");
    in_.append(buf, static_cast<size_t>(n));
  }
}

bool ControlClient::HasBufferedReply() const {
  return wire::DecodeFrame(in_, wire::kMaxControlReplyBytes).state !=
         wire::DecodeState::kNeedMore;
}

Result<wire::ControlReply> ControlClient::Call(wire::ControlRequest request) {
  CAIRN_ASSIGN_OR_RETURN(uint64_t id, Send(std::move(request)));
  for (;;) {
    CAIRN_ASSIGN_OR_RETURN(wire::ControlReply r, Receive());
    if (r.id() != id) continue;
    if (r.has_error()) return StatusOf(r.error());
    // A status of many devices comes in parts (ControlServer::HandleStatus).
    while (r.has_status() && !r.done()) {
      CAIRN_ASSIGN_OR_RETURN(wire::ControlReply more, Receive());
      if (more.id() != id) continue;
      if (more.has_error()) return StatusOf(more.error());
      for (auto& d : *more.mutable_status()->mutable_devices()) {
        *r.mutable_status()->add_devices() = std::move(d);
      }
      r.set_done(more.done());
    }
    return r;
  }
}

Status StatusOf(const wire::ControlError& e) {
  const std::string& c = e.code();
  const std::string& m = e.message();
  if (c == "NotFound") return Status::NotFound(m);
  if (c == "InvalidArgument") return Status::InvalidArgument(m);
  if (c == "Corruption") return Status::Corruption(m);
  if (c == "PermissionDenied") return Status::PermissionDenied(m);
  if (c == "FailedPrecondition") return Status::FailedPrecondition(m);
  if (c == "Unavailable") return Status::Unavailable(m);
  if (c == "ResourceExhausted") return Status::ResourceExhausted(m);
  if (c == "Fork") return Status::Fork(m);
  if (c == "UnknownOutcome") return Status::UnknownOutcome(m);
  if (c == "Diverged") return Status::Diverged(m);
  if (c == "Gap") return Status::Gap(m);
  return Status::IOError(m);
}

}  // namespace cairn::node
