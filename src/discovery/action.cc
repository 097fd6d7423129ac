// The Action factories of the discovery core.
#include "discovery/peer_manager.h"

namespace cairn::discovery {

Action Action::Connect(ConnId conn, std::string address) {
  Action a;
  a.kind = Kind::kConnect;
  a.conn = conn;
  a.address = std::move(address);
  return a;
}

Action Action::Send(ConnId conn, wire::Envelope envelope) {
  Action a;
  a.kind = Kind::kSend;
  a.conn = conn;
  a.envelope = std::move(envelope);
  return a;
}

Action Action::Close(ConnId conn, std::string reason) {
  Action a;
  a.kind = Kind::kClose;
  a.conn = conn;
  a.reason = std::move(reason);
  return a;
}

Action Action::Resolve(std::string name) {
  Action a;
  a.kind = Kind::kResolve;
  a.address = std::move(name);
  return a;
}

Action Action::PeerActive(std::string node_id, ConnId conn) {
  Action a;
  a.kind = Kind::kPeerActive;
  a.node_id = std::move(node_id);
  a.conn = conn;
  return a;
}

Action Action::PeerGone(std::string node_id, std::string reason) {
  Action a;
  a.kind = Kind::kPeerGone;
  a.node_id = std::move(node_id);
  a.reason = std::move(reason);
  return a;
}

Action Action::SubscriberActive(std::string name, ConnId conn,
                                std::vector<std::string> read_scope) {
  Action a;
  a.kind = Kind::kSubscriberActive;
  a.node_id = std::move(name);
  a.conn = conn;
  a.read_scope = std::move(read_scope);
  return a;
}

Action Action::Deliver(std::string node_id, wire::Envelope envelope) {
  Action a;
  a.kind = Kind::kDeliver;
  a.node_id = std::move(node_id);
  a.envelope = std::move(envelope);
  return a;
}

Action Action::SavePeer(wire::PeerRecord record) {
  Action a;
  a.kind = Kind::kSavePeer;
  a.record = std::move(record);
  return a;
}

Action Action::Log(std::string node_id, std::string reason) {
  Action a;
  a.kind = Kind::kLog;
  a.node_id = std::move(node_id);
  a.reason = std::move(reason);
  return a;
}

Action Action::ErasePeer(std::string node_id) {
  Action a;
  a.kind = Kind::kErasePeer;
  a.node_id = std::move(node_id);
  return a;
}

Action Action::PeerRtt(std::string node_id, int64_t rtt_us) {
  Action a;
  a.kind = Kind::kPeerRtt;
  a.node_id = std::move(node_id);
  a.rtt_us = rtt_us;
  return a;
}

}  // namespace cairn::discovery
