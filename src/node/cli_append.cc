// cairn append: one event, or JSON lines from stdin in pipelined batches. What is
// printed is exactly what the node acknowledged; a refused batch or a vanished
// node ends the run with a non-zero status (after printing the acks that came).
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <deque>
#include <string>
#include <utility>

#include "base/json_limits.h"
#include "node/cli_internal.h"
#include "node/control_client.h"

namespace cairn::node::cli {
namespace {

using nlohmann::json;

constexpr size_t kMaxBatchBytes = 2u << 20;

class StdinAppender {
 public:
  StdinAppender(const Options& o, ControlClient& c) : o_(o), c_(c) {}
  int Run();

 private:
  bool Step();
  bool ReadInput();
  bool TakeLine(const std::string& line);
  bool SendBatch();
  bool ReceiveOne();

  const Options& o_;
  ControlClient& c_;
  std::string buffer_;
  std::deque<wire::ControlEvent> pending_;  // parsed, not yet sent
  size_t outstanding_ = 0;                  // batches sent, not yet answered
  size_t line_no_ = 0;
  bool eof_ = false;
  bool failed_ = false;
  bool try_later_ = false;  // refused as Unavailable (restore guard, shutting down)
};

int StdinAppender::Run() {
  for (;;) {
    if (failed_ && outstanding_ == 0) return try_later_ ? kExitTryLater : 1;
    if (eof_ && pending_.empty() && outstanding_ == 0) return 0;
    if (!Step()) return 1;
  }
}

// One turn: send a batch when one is due, else wait for input or a reply.
bool StdinAppender::Step() {
  bool can_send = !failed_ && outstanding_ < o_.window && !pending_.empty();
  if (can_send && (eof_ || pending_.size() >= o_.batch)) return SendBatch();
  if (outstanding_ > 0 && c_.HasBufferedReply()) return ReceiveOne();
  bool want_input = !eof_ && !failed_ && pending_.size() < o_.batch * o_.window;
  pollfd fds[2] = {{c_.fd(), POLLIN, 0},
                   {0, static_cast<short>(want_input ? POLLIN : 0), 0}};
  int n = poll(fds, 2, can_send ? 0 : -1);
  if (n < 0) return errno == EINTR;
  if (n == 0) return SendBatch();  // stdin has nothing more right now
  if (fds[0].revents != 0 && !ReceiveOne()) return false;
  if (fds[1].revents != 0 && !ReadInput()) failed_ = true;
  return true;
}

bool StdinAppender::ReadInput() {
  char buf[64 << 10];
  ssize_t n = read(0, buf, sizeof buf);
  if (n < 0 && errno == EINTR) return true;
  if (n <= 0) {
    eof_ = true;
    if (!buffer_.empty()) return TakeLine(std::exchange(buffer_, ""));
    return true;
  }
  buffer_.append(buf, static_cast<size_t>(n));
  size_t start = 0;
  for (size_t nl; (nl = buffer_.find('\n', start)) != std::string::npos; start = nl + 1) {
    if (!TakeLine(buffer_.substr(start, nl - start))) return false;
  }
  buffer_.erase(0, start);
  return true;
}

bool StdinAppender::TakeLine(const std::string& line) {
  ++line_no_;
  if (line.find_first_not_of(" \t\r") == std::string::npos) return true;
  if (!JsonDepthWithinLimit(line)) {
    Fail("stdin line " + std::to_string(line_no_) + ": JSON nests deeper than " +
         std::to_string(kMaxJsonDepth) + " levels");
    return false;
  }
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("type") ||
      !j["type"].is_string() || !j.contains("payload")) {
    Fail("stdin line " + std::to_string(line_no_) +
         ": expected {\"type\": STRING, \"payload\": JSON}");
    return false;
  }
  wire::ControlEvent e;
  e.set_type(j["type"].get<std::string>());
  e.set_payload(Dump(j["payload"]));
  pending_.push_back(std::move(e));
  return true;
}

bool StdinAppender::SendBatch() {
  wire::ControlRequest req;
  auto* a = req.mutable_append();
  a->set_device(o_.device);
  size_t bytes = 0;
  while (!pending_.empty() && static_cast<size_t>(a->events_size()) < o_.batch &&
         (a->events_size() == 0 ||
          bytes + pending_.front().ByteSizeLong() < kMaxBatchBytes)) {
    bytes += pending_.front().ByteSizeLong();
    *a->add_events() = std::move(pending_.front());
    pending_.pop_front();
  }
  auto id = c_.Send(std::move(req));
  if (!id.ok()) {
    Fail(id.status());
    return false;
  }
  ++outstanding_;
  return true;
}

bool StdinAppender::ReceiveOne() {
  auto r = c_.Receive();
  if (!r.ok()) {
    Fail(r.status());
    return false;
  }
  --outstanding_;
  if (r->has_error()) {
    Fail("append to " + o_.device + " refused: " + r->error().message());
    failed_ = true;
    try_later_ = r->error().code() == "Unavailable";
    return true;  // keep printing the acks of batches already sent
  }
  const auto& a = r->appended();
  if (o_.json) {
    std::printf(
        "%s\n",
        Dump({{"device", a.device()}, {"first", a.first()}, {"last", a.last()}}).c_str());
  } else {
    std::printf("%s %llu %llu\n", a.device().c_str(),
                static_cast<unsigned long long>(a.first()),
                static_cast<unsigned long long>(a.last()));
  }
  std::fflush(stdout);
  return true;
}

}  // namespace

int Append(const Options& o) {
  if (!o.stdin_mode && (o.type.empty() || o.payload.empty())) {
    return Fail("append needs DEVICE TYPE PAYLOAD, or DEVICE --stdin");
  }
  if (o.stdin_mode && !o.type.empty()) return Fail("append --stdin takes only DEVICE");
  if (o.batch == 0) return Fail("--batch must be at least 1");
  auto client = ControlClient::Connect(o.data_dir);
  if (!client.ok()) return Fail(client.status());
  if (o.stdin_mode) return StdinAppender(o, **client).Run();
  wire::ControlRequest req;
  req.mutable_append()->set_device(o.device);
  auto* e = req.mutable_append()->add_events();
  e->set_type(o.type);
  e->set_payload(o.payload);
  // Send and Receive rather than Call: a refusal by the node (nothing appended)
  // is told apart from a lost connection (the outcome is unknown).
  auto sent = (*client)->Send(req);
  if (!sent.ok())
    return Fail("append to " + o.device + " failed: " + sent.status().message());
  auto r = (*client)->Receive();
  if (!r.ok()) return Fail("append to " + o.device + " failed: " + r.status().message());
  if (r->has_error()) {
    Fail("append to " + o.device + " refused: " + r->error().message());
    return r->error().code() == "Unavailable" ? kExitTryLater : 1;
  }
  std::printf("%llu\n", static_cast<unsigned long long>(r->appended().last()));
  return 0;
}

}  // namespace cairn::node::cli
