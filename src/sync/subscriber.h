// Subscriber: the sans-I/O core of a subscriber-only peer, `cairn tail --peer`.
// It speaks the peer protocol to one node like cairnd does — a hello (with the CN
// of its certificate as its id, marked `subscriber`), Subscribe{device, from,
// credit}, Credit back for every message it has taken — and verifies everything
// it hands out with the journal's own checks (journal::StreamVerifier): device
// certificate against the CA with CN = device id, every chain link, the signature
// closing each chunk, snapshots' digests and signatures.
//
//   driver                              core
//   TLS handshake done  ──► OnOpen(peer_id)
//   message received    ──► OnMessage
//   connection closed   ──► OnClosed(message)
//   timer fired         ──► OnTimer          (arm it at NextDeadline())
//   TakeOutputs()      ◄── Send, Start, Snapshot, Records, End
//
// It follows one device, or with `all` every device in the node's catalogue
// (with `follow`, also the ones its catalogue deltas add later). Without
// `follow` it ends once every device reached the head the node reported when it
// was subscribed; a device the node does not store is an error then. Every
// failure ends it with a Status whose message names what was wrong.
//
// Thread-safety: none; one owner. Ownership: the Clock must outlive it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "journal/stream_verifier.h"
#include "wire/schema.h"

namespace cairn::sync {

struct SubscriberOptions {
  std::string self_id;  // the CN of our certificate
  std::string device;   // the device to follow; ignored with `all`
  bool all = false;
  uint64_t from = 1;  // first seq to hand out (>= 1)
  bool follow = false;
  uint64_t credit_bytes = 8u << 20;        // granted with each Subscribe
  int64_t ping_interval_ms = 10'000;       // silence before we ping the node
  int64_t dead_interval_ms = 30'000;       // silence before we give up on it
  size_t max_devices = 200'000;            // streams followed at once
  size_t max_snapshot_bytes = 256u << 20;  // one snapshot being received
};

struct SubscriberOutput {
  enum class Kind {
    kSend,      // message: send it to the node
    kStart,     // device, head: subscribed; the node's head at that moment
    kSnapshot,  // device, snapshot: verified; the reader has not seen what it covers
    kRecords,   // device, records: verified, in order, seq >= from
    kEnd,       // status: the tail is over (Ok: complete); close the connection
  };
  Kind kind = Kind::kSend;
  wire::Envelope message;
  std::string device;
  uint64_t head = 0;
  journal::SnapshotData snapshot;
  // kSnapshot: the node says events from truncated_from up to `truncated` are
  // gone there (retention) and come only as this snapshot; 0 when none are.
  uint64_t truncated = 0;
  uint64_t truncated_from = 0;
  std::vector<wire::Record> records;
  Status status;
};

class Subscriber {
 public:
  Subscriber(SubscriberOptions options, std::shared_ptr<const journal::CertAuthority> ca,
             Clock* clock);

  // TLS is up; `peer_id` is the CN of the node's verified certificate.
  void OnOpen(const std::string& peer_id);
  void OnMessage(const wire::Envelope& message);
  // The connection ended before the tail did: ends it with Unavailable(message).
  void OnClosed(const std::string& message);
  // The reader is done (an interrupt): says goodbye and ends with Ok.
  void Stop(const std::string& why);

  std::optional<int64_t> NextDeadline() const;
  void OnTimer();
  std::vector<SubscriberOutput> TakeOutputs();

  bool ended() const { return ended_; }
  // True once the node's hello arrived and checked out.
  bool hello_done() const { return hello_done_; }
  const std::string& peer_id() const { return peer_id_; }

 private:
  struct Stream {
    explicit Stream(journal::StreamVerifier v) : verifier(std::move(v)) {}
    journal::StreamVerifier verifier;
    uint64_t target = 0;  // without follow: done once verified up to here
    bool done = false;
    std::optional<journal::SnapshotData> assembling;
    uint64_t assembling_bytes = 0;
    uint64_t truncated = 0;  // from the last stream header
  };

  void OnHello(const wire::Hello& hello);
  void OnCatalogue(const wire::Catalogue& catalogue);
  void Start(const std::string& device, uint64_t head);
  void OnStreamHeader(const wire::StreamHeader& header);
  void OnSnapshot(const wire::Snapshot& snapshot, uint64_t bytes);
  void OnEvents(const wire::Events& events, uint64_t bytes);
  Stream* Find(const std::string& device);
  void Taken(const std::string& device, Stream& s, uint64_t bytes);
  void MaybeComplete();
  void Send(wire::Envelope message);
  void Fail(const std::string& device, const Status& s);
  void End(Status status, const std::string& goodbye);

  SubscriberOptions options_;
  std::shared_ptr<const journal::CertAuthority> ca_;
  Clock* clock_;
  std::string peer_id_;
  bool open_ = false;
  bool hello_done_ = false;
  bool catalogue_seen_ = false;
  bool ended_ = false;
  int64_t last_rx_mono_ = 0;
  bool ping_outstanding_ = false;
  uint64_t next_nonce_ = 1;
  std::map<std::string, Stream> streams_;
  std::vector<SubscriberOutput> out_;
};

}  // namespace cairn::sync
