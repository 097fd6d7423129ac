// Tail: one `ControlTail` request being served. It pulls the stored range through
// a journal Cursor on the thread pool, one bounded piece at a time, and pauses
// while the client's reply queue is congested. Caught up and following, it
// subscribes from the next seq and forwards live deliveries; if the client falls
// more than kMaxLiveBytes behind, it drops the subscription and pulls again from
// where it was, so a slow reader costs bounded memory and never misses an event.
//
// Thread-safety: the loop thread, except the subscription callback (the journal's
// delivery thread), which only queues under mu_ and posts to the loop.
// Ownership: shared by its client (ControlServer) and its in-flight work; the
// server, its journal and its LoopPost must outlive every call but destruction.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "journal/journal.h"

namespace cairn::node {

class ControlServer;

class Tail : public std::enable_shared_from_this<Tail> {
 public:
  static constexpr size_t kPieceBytes = 1u << 20;
  static constexpr size_t kMaxLiveBytes = 8u << 20;

  Tail(ControlServer* server, uint64_t client, uint64_t request, std::string device,
       uint64_t from, bool follow);
  ~Tail();

  void Start();
  // The client's reply queue drained.
  void Resume();
  // Ends the tail without a reply (the client is gone or the node stops).
  void Cancel();

 private:
  void Pull();
  void OnPiece(journal::Delivery d);
  // Sends a delivery; false when the tail ended (gone, or an error was sent).
  bool Forward(const journal::Delivery& d, bool caught_up);
  void End(const Status& s);
  void GoLive();
  void OnLive();
  void BackToPulling();

  ControlServer* server_;
  uint64_t client_;
  uint64_t request_;
  std::string device_;
  uint64_t next_;  // the next seq to send
  bool follow_;
  bool cancelled_ = false;
  bool working_ = false;  // a Pull is on the pool
  bool paused_ = false;   // the client is congested
  bool live_ = false;
  std::unique_ptr<journal::Cursor> cursor_;
  std::unique_ptr<journal::Subscription> sub_;

  std::mutex mu_;  // guards the live queue
  std::deque<journal::Delivery> live_queue_;
  size_t live_bytes_ = 0;
  bool overflow_ = false;
  bool posted_ = false;
};

}  // namespace cairn::node
