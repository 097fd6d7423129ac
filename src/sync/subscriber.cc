#include "sync/subscriber.h"

#include <utility>

#include "base/check.h"
#include "journal/identity.h"
#include "wire/protocol.h"

namespace cairn::sync {
namespace {

std::string Ms(int64_t ms) { return std::to_string(ms) + " ms"; }

}  // namespace

Subscriber::Subscriber(SubscriberOptions options,
                       std::shared_ptr<const journal::CertAuthority> ca, Clock* clock)
    : options_(std::move(options)), ca_(std::move(ca)), clock_(clock) {
  CHECK(ca_ != nullptr && clock_ != nullptr && options_.from >= 1);
}

std::vector<SubscriberOutput> Subscriber::TakeOutputs() {
  std::vector<SubscriberOutput> out;
  out.swap(out_);
  return out;
}

void Subscriber::Send(wire::Envelope message) {
  SubscriberOutput o;
  o.kind = SubscriberOutput::Kind::kSend;
  o.message = std::move(message);
  out_.push_back(std::move(o));
}

void Subscriber::End(Status status, const std::string& goodbye) {
  if (ended_) return;
  if (open_ && !goodbye.empty()) {
    wire::Envelope bye;
    bye.mutable_goodbye()->set_reason(goodbye);
    Send(std::move(bye));
  }
  ended_ = true;
  SubscriberOutput o;
  o.kind = SubscriberOutput::Kind::kEnd;
  o.status = std::move(status);
  out_.push_back(std::move(o));
}

void Subscriber::Fail(const std::string& device, const Status& s) {
  End(s.WithContext("node '" + peer_id_ + "' sent a stream of '" + device +
                    "' that fails verification"),
      "verification failed: " + s.message());
}

void Subscriber::OnOpen(const std::string& peer_id) {
  if (ended_ || open_) return;
  open_ = true;
  peer_id_ = peer_id;
  last_rx_mono_ = clock_->MonotonicMicros();
  wire::Envelope m;
  wire::Hello* hello = m.mutable_hello();
  hello->set_node_id(options_.self_id);
  hello->set_protocol_version(wire::kProtocolVersion);
  hello->set_time_us(clock_->NowMicros());
  hello->set_subscriber(true);
  Send(std::move(m));
}

void Subscriber::OnClosed(const std::string& message) {
  open_ = false;
  End(Status::Unavailable(message), "");
}

void Subscriber::Stop(const std::string& why) { End(Status::Ok(), why); }

void Subscriber::OnMessage(const wire::Envelope& m) {
  if (ended_ || !open_) return;
  last_rx_mono_ = clock_->MonotonicMicros();
  ping_outstanding_ = false;
  if (m.has_goodbye()) {
    return End(Status::Unavailable("node '" + peer_id_ +
                                   "' ended the connection: " + m.goodbye().reason()),
               "");
  }
  if (m.has_hello()) return OnHello(m.hello());
  if (!hello_done_) {
    return End(Status::Corruption("node '" + peer_id_ + "' broke the protocol: " +
                                  "a message before its hello"),
               "protocol error: a message before hello");
  }
  switch (m.msg_case()) {
    case wire::Envelope::kPing: {
      wire::Envelope pong;
      pong.mutable_pong()->set_nonce(m.ping().nonce());
      return Send(std::move(pong));
    }
    case wire::Envelope::kCatalogue:
      return OnCatalogue(m.catalogue());
    case wire::Envelope::kStreamHeader:
      return OnStreamHeader(m.stream_header());
    case wire::Envelope::kSnapshot:
      return OnSnapshot(m.snapshot(), m.ByteSizeLong());
    case wire::Envelope::kEvents:
      return OnEvents(m.events(), m.ByteSizeLong());
    default:
      return;  // pongs, peer exchange, what a newer node may send: nothing to do
  }
}

void Subscriber::OnHello(const wire::Hello& hello) {
  std::string wrong;
  const uint32_t v = hello.protocol_version();
  if (hello_done_) {
    wrong = "a second hello";
  } else if (hello.node_id() != peer_id_) {
    wrong = "its hello names node '" + hello.node_id() + "' but its certificate says '" +
            peer_id_ + "'";
  } else if (v < wire::kMinProtocolVersion || v > wire::kProtocolVersion) {
    wrong = "incompatible protocol version " + std::to_string(v);
  } else if (hello.subscriber()) {
    wrong = "it is a subscriber, not a node";
  }
  if (!wrong.empty()) {
    return End(Status::Corruption("node '" + peer_id_ + "' refused: " + wrong),
               "protocol error: " + wrong);
  }
  hello_done_ = true;
}

// The node's catalogue: which devices to subscribe to, and their heads.
void Subscriber::OnCatalogue(const wire::Catalogue& c) {
  const bool first = !catalogue_seen_;
  // The first catalogue may come in parts, with deltas between them: it is
  // whole at its part without `more`.
  if ((c.full() || c.continues()) && !c.more()) catalogue_seen_ = true;
  if (!first && !options_.follow) return;  // a plain tail takes what was there
  for (const auto& e : c.entries()) {
    if (ended_) return;
    if (!options_.all && e.device() != options_.device) continue;
    if (streams_.count(e.device()) != 0) continue;
    if (!journal::ValidateDeviceId(e.device()).ok()) {
      return End(Status::Corruption("node '" + peer_id_ +
                                    "' named an invalid device id in its catalogue"),
                 "protocol error: invalid device id");
    }
    Start(e.device(), e.last());
  }
  if (!first || !catalogue_seen_ || options_.follow || ended_) return;
  if (!options_.all && streams_.count(options_.device) == 0) {
    return End(
        Status::NotFound("node '" + peer_id_ + "' does not store device '" +
                         options_.device + "' (or this certificate may not read it)"),
        "tail done");
  }
  MaybeComplete();
}

void Subscriber::Start(const std::string& device, uint64_t head) {
  if (streams_.size() >= options_.max_devices) {
    return End(
        Status::ResourceExhausted("more than " + std::to_string(options_.max_devices) +
                                  " devices to follow"),
        "too many devices");
  }
  Stream& s =
      streams_
          .emplace(device, Stream(journal::StreamVerifier(ca_, device, options_.from)))
          .first->second;
  s.target = head;
  if (!options_.follow && head < options_.from) {
    s.done = true;  // nothing at or after `from`
    return;
  }
  SubscriberOutput o;
  o.kind = SubscriberOutput::Kind::kStart;
  o.device = device;
  o.head = head;
  out_.push_back(std::move(o));
  wire::Envelope sub;
  sub.mutable_subscribe()->set_device(device);
  sub.mutable_subscribe()->set_from(s.verifier.subscribe_from());
  sub.mutable_subscribe()->set_credit(options_.credit_bytes);
  Send(std::move(sub));
}

Subscriber::Stream* Subscriber::Find(const std::string& device) {
  auto it = streams_.find(device);
  return it == streams_.end() || it->second.done ? nullptr : &it->second;
}

void Subscriber::OnStreamHeader(const wire::StreamHeader& h) {
  Stream* s = Find(h.device());
  if (s == nullptr) return;
  s->truncated = h.truncated();
  Status st = s->verifier.SetCert(h.device_cert());
  if (!st.ok()) Fail(h.device(), st);
}

void Subscriber::OnSnapshot(const wire::Snapshot& m, uint64_t bytes) {
  const std::string& device = m.header().device();
  Stream* s = Find(device);
  if (s == nullptr) return;
  if (!s->assembling || s->assembling->header.seq() != m.header().seq()) {
    s->assembling.emplace();
    s->assembling->header = m.header();
    s->assembling_bytes = 0;
  }
  if (m.index() > 0) {
    if (m.index() != s->assembling->chunks.size() + 1) {
      return Fail(device, Status::InvalidArgument("snapshot chunks out of order"));
    }
    s->assembling_bytes += m.chunk().ByteSizeLong();
    s->assembling->chunks.push_back(m.chunk());
  }
  if (s->assembling_bytes > options_.max_snapshot_bytes) {
    return Fail(device, Status::ResourceExhausted("snapshot exceeds the size limit"));
  }
  if (s->assembling->chunks.size() == m.header().chunks()) {
    journal::SnapshotData snap = std::move(*s->assembling);
    s->assembling.reset();
    const uint64_t reading = std::max(options_.from, s->verifier.last() + 1);
    auto fresh = s->verifier.AcceptSnapshot(snap);
    if (!fresh.ok()) return Fail(device, fresh.status());
    if (*fresh && snap.header.seq() >= options_.from) {
      SubscriberOutput o;
      o.kind = SubscriberOutput::Kind::kSnapshot;
      o.device = device;
      o.snapshot = std::move(snap);
      o.truncated = std::exchange(s->truncated, 0);
      o.truncated_from = reading;
      out_.push_back(std::move(o));
    }
  }
  Taken(device, *s, bytes);
}

void Subscriber::OnEvents(const wire::Events& m, uint64_t bytes) {
  Stream* s = Find(m.device());
  if (s == nullptr) return;
  auto verified = s->verifier.Accept(
      std::vector<wire::Record>(m.records().begin(), m.records().end()));
  if (!verified.ok()) return Fail(m.device(), verified.status());
  if (!verified->empty()) {
    SubscriberOutput o;
    o.kind = SubscriberOutput::Kind::kRecords;
    o.device = m.device();
    o.records = std::move(*verified);
    out_.push_back(std::move(o));
  }
  Taken(m.device(), *s, bytes);
}

// A message of `device` was taken: the node may send as much again; without
// follow, the stream may be complete.
void Subscriber::Taken(const std::string& device, Stream& s, uint64_t bytes) {
  if (!options_.follow && s.verifier.last() >= s.target) {
    s.done = true;
    wire::Envelope un;
    un.mutable_unsubscribe()->set_device(device);
    Send(std::move(un));
    return MaybeComplete();
  }
  wire::Envelope c;
  c.mutable_credit()->set_device(device);
  c.mutable_credit()->set_bytes(bytes);
  Send(std::move(c));
}

void Subscriber::MaybeComplete() {
  if (options_.follow || !catalogue_seen_) return;
  for (const auto& entry : streams_) {
    if (!entry.second.done) return;
  }
  End(Status::Ok(), "tail done");
}

std::optional<int64_t> Subscriber::NextDeadline() const {
  if (!open_ || ended_) return std::nullopt;
  const int64_t wait_ms = ping_outstanding_ || !hello_done_ ? options_.dead_interval_ms
                                                            : options_.ping_interval_ms;
  return last_rx_mono_ + wait_ms * 1000;
}

void Subscriber::OnTimer() {
  if (!open_ || ended_) return;
  const int64_t silent_ms = (clock_->MonotonicMicros() - last_rx_mono_) / 1000;
  if (silent_ms >= options_.dead_interval_ms) {
    return End(
        Status::Unavailable("node '" + peer_id_ + "' sent nothing for " + Ms(silent_ms)),
        "dead: nothing received for " + Ms(silent_ms));
  }
  if (hello_done_ && !ping_outstanding_ && silent_ms >= options_.ping_interval_ms) {
    ping_outstanding_ = true;
    wire::Envelope ping;
    ping.mutable_ping()->set_nonce(next_nonce_++);
    Send(std::move(ping));
  }
}

}  // namespace cairn::sync
