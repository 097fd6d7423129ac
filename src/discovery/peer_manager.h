// PeerManager: the sans-I/O core of discovery. It keeps the peer table and drives
// every peer through the states of DESIGN.md (outgoing, incoming, active,
// lifesupport, purgatory, deleted), taking events from its driver and returning
// actions for it to perform. It opens no socket, reads time only from the injected
// Clock and draws jitter only from the injected Rng, so tests drive it with a
// ManualClock and a seeded Rng, and a simulation can run many of them in one thread.
//
//   driver                                core
//   Connection opened ──► OnOpened / OnIncomingOpened
//   message received  ──► OnMessage
//   connection closed ──► OnClosed
//   timer fired       ──► OnTimer          (arm it at NextDeadline())
//   DNS answer        ──► OnResolved
//   TakeActions()    ◄── Connect, Send, Close, Resolve, PeerActive, PeerGone,
//                        SubscriberActive, Deliver, SavePeer, ErasePeer
//
// Subscribers: a hello with `subscriber` set (`cairn tail --peer`) on an accepted
// connection makes it a subscriber, not a peer: it gets no entry in the table (the
// one its connection claimed on opening is given back), so it is never saved to
// peer history, told to other peers, dialled back or shown as a peer. It is
// active under SubscriberName(id, conn) until its connection closes: its
// messages are delivered and PeerGone reports its end, like a peer's.
//
// Connections are named by ConnId, chosen by the core (a Connect action carries the id
// of the outgoing connection; OnIncomingOpened returns one for an accepted one).
// After the core asks to close a connection, the driver still reports OnClosed.
//
// Thread-safety: none; one thread (the loop thread) owns a PeerManager.
// Ownership: the Clock and the Rng must outlive the PeerManager.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/rng.h"
#include "discovery/options.h"
#include "wire/schema.h"

namespace cairn::discovery {

using ConnId = uint64_t;

// The name a subscriber is active under: its certificate's id, '#', its
// connection. '#' is never part of a node id, so it never names a peer.
std::string SubscriberName(const std::string& id, ConnId conn);

enum class PeerState {
  kOutgoing,
  kIncoming,
  kActive,
  kLifesupport,
  kPurgatory,
  kDeleted
};
const char* StateName(PeerState state);

struct Action {
  enum class Kind {
    kConnect,           // conn, address: dial address ("HOST:PORT") as connection `conn`
    kSend,              // conn, envelope
    kClose,             // conn, reason (an orderly close; report OnClosed afterwards)
    kResolve,           // address: a DNS seed name to resolve; answer with OnResolved
    kPeerActive,        // node_id, conn: the peer's hello exchange completed
    kPeerGone,          // node_id, reason: the peer's active connection is gone
    kSubscriberActive,  // node_id (a SubscriberName), conn: a subscriber's hello
    kDeliver,           // node_id, envelope: a non-discovery message from an active peer
    kSavePeer,          // record: persist peer history
    kErasePeer,         // node_id: forget peer history
    kPeerRtt,  // node_id, rtt_us: a new smoothed round-trip time of an active peer
    kLog,      // node_id, reason: a peer hit a limit; a line for the node's log
  };
  Kind kind = Kind::kSend;
  ConnId conn = 0;
  std::string address;
  std::string node_id;
  std::string reason;
  wire::Envelope envelope;
  wire::PeerRecord record;
  int64_t rtt_us = 0;
  std::vector<std::string>
      read_scope;  // kSubscriberActive: what it may read (empty: all)

  static Action Connect(ConnId conn, std::string address);
  static Action Send(ConnId conn, wire::Envelope envelope);
  static Action Close(ConnId conn, std::string reason);
  static Action Resolve(std::string name);
  static Action PeerActive(std::string node_id, ConnId conn);
  static Action PeerGone(std::string node_id, std::string reason);
  static Action SubscriberActive(std::string name, ConnId conn,
                                 std::vector<std::string> read_scope = {});
  static Action Deliver(std::string node_id, wire::Envelope envelope);
  static Action SavePeer(wire::PeerRecord record);
  static Action ErasePeer(std::string node_id);
  static Action PeerRtt(std::string node_id, int64_t rtt_us);
  static Action Log(std::string node_id, std::string reason);
};

// One row of the peer table, for status. Purgatory rows name the address that is
// blocked (and the node id when known).
struct PeerStatus {
  std::string node_id;  // empty for a seed or DNS address not yet identified
  std::vector<std::string> addresses;
  PeerState state = PeerState::kLifesupport;
  std::string reason;        // why it entered `state`
  int64_t since_us = 0;      // wall time it entered `state`
  int64_t last_seen_us = 0;  // wall time of the last completed hello, 0 if never
  uint32_t attempts = 0;     // failed dial attempts since it was last active
  bool pinned = false;
  int64_t next_in_us = 0;  // lifesupport: next attempt; purgatory: its end (from now)
  int64_t rtt_us = 0;      // active: smoothed round-trip time, 0 until measured
};

// One state change, kept in a bounded log.
struct Transition {
  int64_t time_us = 0;
  std::string peer;  // node id, or the address of an unidentified entry
  PeerState from = PeerState::kDeleted;
  PeerState to = PeerState::kDeleted;
  std::string reason;
};

class PeerManager {
 public:
  // `self_id` is this node's id (the CN of its certificate); `advertise` the
  // "HOST:PORT" others may dial, empty when none.
  PeerManager(std::string self_id, std::string advertise, Options options, Clock* clock,
              Rng* rng);
  PeerManager(const PeerManager&) = delete;
  PeerManager& operator=(const PeerManager&) = delete;

  // ---- sources of peers
  // A configured seed: pinned, dialled at once. Ignored when not HOST:PORT.
  void AddSeed(const std::string& address);
  // A DNS seed name, resolved now and then every dns_refresh_ms.
  void AddDnsName(const std::string& name);
  void OnResolved(const std::string& name, const std::vector<std::string>& addresses,
                  const std::string& error);
  // Peer history from the store; every peer is dialled at once.
  void Restore(const std::vector<wire::PeerRecord>& records);

  // ---- connection events
  // A TLS connection we started (a Connect action) completed its handshake;
  // `verified_id` is the CN of the peer's verified certificate.
  void OnOpened(ConnId conn, const std::string& verified_id,
                const std::string& remote_address);
  // An accepted TLS connection completed its handshake; returns its id. `reader`:
  // its certificate is a reader's (TLS client only, certs/make-reader.sh), which
  // may only subscribe (its hello must say so), to the devices `read_scope`
  // matches (globs; empty: all).
  ConnId OnIncomingOpened(const std::string& verified_id,
                          const std::string& remote_address, bool reader = false,
                          std::vector<std::string> read_scope = {});
  void OnMessage(ConnId conn, wire::Envelope&& message);
  // Once per connection, opened or not, whoever closed it.
  void OnClosed(ConnId conn, const std::string& reason);

  // ---- time
  // Monotonic µs of the next thing due, if any; call OnTimer() then.
  std::optional<int64_t> NextDeadline() const;
  void OnTimer();

  // The actions produced since the last call, in order.
  std::vector<Action> TakeActions();

  // ---- holdings (holdings.h)
  // What this node stores: sent to every active peer now and to each new one.
  void SetHoldings(wire::Holdings own);
  // Devices this node follows that no active peer offers (sync::Engine::Unheld):
  // known nodes whose holdings may hold one are dialled, beyond target_peers,
  // at most max_holder_peers of them connected or being dialled at once, each
  // tried once per device while it stays wanted.
  void SetWanted(std::vector<std::string> devices);

  // ---- queries
  // The connection of an active peer, or of a subscriber by its SubscriberName.
  std::optional<ConnId> ActiveConnection(const std::string& node_id) const;
  // The node id or subscriber name `conn` is the active connection of.
  std::optional<std::string> ActiveName(ConnId conn) const;
  size_t subscriber_count() const { return subscribers_.size(); }
  std::vector<std::string> ActivePeers() const;
  std::vector<PeerStatus> Snapshot() const;
  const std::deque<Transition>& transitions() const { return transitions_; }
  const std::string& self_id() const { return self_id_; }
  const Options& options() const { return options_; }
  // Connection attempts started so far (Connect actions).
  uint64_t connect_attempts() const { return connect_attempts_; }

 private:
  // A peer we know: keyed by node id, or by "@" + address until a hello names it.
  struct Entry {
    std::string node_id;
    std::vector<std::string> addresses;  // [0] is the one to tell others
    PeerState state = PeerState::kLifesupport;
    std::string reason;
    int64_t since_us = 0;
    int64_t last_seen_us = 0;
    uint32_t attempts = 0;
    bool pinned = false;
    // A hello with this node completed once (or it came from our own history, a
    // seed or DNS): only such entries are saved, and they evict the others when
    // the table is full.
    bool verified = false;
    std::string learned_from;  // the peer whose exchange told us of it
    // Known, not dialled: the mesh has its target_peers (state lifesupport, no
    // timer). FillSlots dials spares when a slot frees.
    bool spare = false;
    // Its exchanges to us: tokens left (Options::exchange_burst, exchange_per_s).
    double exchange_tokens = -1;    // -1: full
    int64_t exchange_mono = 0;      // when the tokens were last counted
    bool exchange_limited = false;  // its last exchange was over the rate (logged)
    ConnId conn = 0;                // the connection `state` refers to (0 in lifesupport)
    int64_t next_mono = 0;          // lifesupport: next attempt
    size_t next_address = 0;
    // What it stores, from itself (`holdings_direct`) or passed on by a peer.
    std::optional<wire::Holdings> holdings;
    bool holdings_direct = false;
    std::string holder_for;  // the wanted device it was dialled for (SetWanted)
  };
  struct Conn {
    ConnId id = 0;
    bool outgoing = false;
    std::string address;  // outgoing: dialled; incoming: the remote end
    std::string key;      // the entry this connection works for
    std::string verified_id;
    bool reader = false;  // see OnIncomingOpened
    std::vector<std::string> read_scope;
    bool opened = false;
    bool hello_done = false;
    bool closing = false;
    bool full = false;  // the peer said goodbye as full (Options::max_active)
    std::string close_reason;
    int64_t opened_mono = 0;
    int64_t last_rx_mono = 0;
    bool ping_outstanding = false;
    uint64_t probe_nonce = 0;  // the ping being timed, 0 when none
    int64_t probe_sent_mono = 0;
    int64_t rtt_us = 0;       // smoothed; 0 until the first pong
    bool subscriber = false;  // its hello said so; `key` is its SubscriberName
    // An accepted connection claims the entry of its certificate's id until its
    // hello; a subscriber gives it back: as it was, or removed if it made it.
    bool claimed_new = false;
    std::optional<Entry> claimed_from;
  };
  struct Purgatory {
    std::string node_id;
    std::string reason;
    int64_t since_us = 0;
    int64_t until_mono = 0;
  };
  struct DnsName {
    int64_t next_mono = 0;
    bool pending = false;
    std::string last_error;
  };

  // peer_manager.cc: the table.
  Entry* Find(const std::string& key);
  std::string KeyOfAddress(const std::string& address) const;
  // A new entry, or nullptr when the table is full; a `verified` one evicts the
  // oldest entry that never completed a hello to make room.
  Entry* NewEntry(const std::string& key, const std::string& reason, bool verified);
  bool EvictUnverified(const std::string& why);
  void AddAddress(Entry& e, const std::string& address, bool front);
  void SetState(Entry& e, const std::string& key, PeerState to, const std::string& why);
  void Dial(const std::string& key, const std::string& why);
  std::optional<std::string> PickAddress(Entry& e);
  void ToLifesupport(const std::string& key, const std::string& why);
  void Delete(const std::string& key, const std::string& why);
  void ToPurgatory(const std::string& address, const std::string& node_id,
                   const std::string& why);
  bool Blocked(const std::string& address) const;
  int64_t Backoff(uint32_t attempts);
  void Save(const Entry& e);
  void Log(const std::string& peer, PeerState from, PeerState to, const std::string& why);
  // `from_peer`: the peer whose exchange told us (empty: a seed, DNS, history).
  void Learn(const std::string& node_id, const std::string& address, bool pinned,
             const std::string& why, const std::string& from_peer = "");
  void TimerEntries(int64_t now);
  void TimerConns(int64_t now);
  void TimerDns(int64_t now);

  // peer_manager_conn.cc: connections, hello, heartbeats, messages.
  ConnId NewConn(bool outgoing, const std::string& address, const std::string& key);
  void SendHello(ConnId conn);
  // Accepted connections of `verified_id` that have not completed their hello.
  size_t PendingFrom(const std::string& verified_id) const;
  void Send(ConnId conn, wire::Envelope envelope);
  void CloseConn(ConnId conn, const std::string& why, bool goodbye, bool full = false);
  // The bounded mesh (Options::target_peers): peers active or being dialled;
  // whether another may be dialled; dial `key` or keep it as a spare; dial
  // spares while there is room.
  size_t Connections() const;
  bool Room() const;
  void DialOrPark(const std::string& key, const std::string& why);
  void FillSlots();
  void OnHello(Conn& c, const wire::Hello& hello);
  void OnSubscriberHello(Conn& c);
  void ReleaseClaim(Conn& c);
  bool CheckHello(Conn& c, const wire::Hello& hello);
  std::optional<std::string> Identify(Conn& c, const wire::Hello& hello);
  void OnSelfConnection(Conn& c, Entry* e);
  void NameEntry(Conn& c, Entry& e, const std::string& id);
  void Activate(Conn& c, const std::string& id, const wire::Hello& hello);
  void ResolveDuplicate(Conn& neu, Entry& e, const std::string& id,
                        const wire::Hello& hello);
  void MakeActive(Conn& c, Entry& e, const std::string& id, const std::string& why);
  void OnDiscoveryMessage(Conn& c, wire::Envelope& m);
  void OnPeerExchange(const std::string& from, Entry& source,
                      const wire::PeerExchange& px);
  void SendExchange(ConnId conn, const std::string& exclude);
  void AnnounceToOthers(const std::string& id);
  // Dials known nodes that may hold a wanted device (SetWanted).
  void DialHolders();
  void ForwardHoldings(int64_t now);
  void Heartbeat(Conn& c, int64_t now);
  // Sends a ping, timing it unless another is being timed.
  void SendPing(Conn& c, int64_t now);
  void OnPong(Conn& c, uint64_t nonce);

  std::string self_id_;
  std::string advertise_;
  Options options_;
  Clock* clock_;
  Rng* rng_;
  std::map<std::string, Entry> entries_;  // node id, or "@" + address
  std::map<ConnId, Conn> conns_;
  std::map<std::string, Purgatory> purgatory_;  // by blocked address
  std::map<std::string, DnsName> dns_;
  std::set<std::string> self_addresses_;       // dialled and found to be us
  std::map<std::string, ConnId> subscribers_;  // by SubscriberName
  std::deque<Transition> transitions_;
  std::vector<Action> actions_;
  ConnId next_conn_ = 1;
  uint64_t connect_attempts_ = 0;
  int64_t next_exchange_ = 0;
  std::optional<wire::Holdings> own_holdings_;
  std::vector<std::string> wanted_;
  std::set<std::pair<std::string, std::string>> holder_tried_;  // (device, node)
  std::set<std::string> holdings_dirty_;  // peers whose new holdings are to go on
  int64_t next_holdings_forward_ = 0;
};

}  // namespace cairn::discovery
