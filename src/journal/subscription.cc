// Push subscriptions. Each one is a Cursor over committed state, so the seam
// between catch-up and live cannot gap or duplicate: a commit only marks the
// subscription ready, and the delivery thread reads on from the cursor's seq.
#include "journal/journal_internal.h"

namespace cairn::journal {

using internal::SubState;

Result<std::unique_ptr<Subscription>> Journal::Subscribe(
    std::string_view device, uint64_t from,
    std::function<void(const Delivery&)> callback) {
  CAIRN_ASSIGN_OR_RETURN(auto cursor, OpenCursor(device, from));
  auto sub = std::make_shared<SubState>();
  sub->device = std::string(device);
  sub->cursor = std::move(cursor);
  sub->callback = std::move(callback);
  {
    std::lock_guard<std::mutex> l(sub_mu_);
    subs_[sub->device].insert(sub);
    sub->queued = true;
    ready_.push_back(sub);
  }
  sub_cv_.notify_all();
  return std::make_unique<Subscription>(this, std::move(sub));
}

void Journal::NotifySubscribers(const std::string& device) {
  std::lock_guard<std::mutex> l(sub_mu_);
  auto it = subs_.find(device);
  if (it == subs_.end()) return;
  for (const auto& sub : it->second) {
    if (sub->queued || sub->failed) continue;
    sub->queued = true;
    ready_.push_back(sub);
  }
  sub_cv_.notify_all();
}

void Journal::DeliveryLoop() {
  std::unique_lock<std::mutex> l(sub_mu_);
  for (;;) {
    sub_cv_.wait(l, [&] { return sub_stopping_ || !ready_.empty(); });
    if (sub_stopping_) return;
    std::shared_ptr<SubState> sub = std::move(ready_.front());
    ready_.pop_front();
    sub->queued = false;
    if (sub->cancelled || sub->failed) continue;
    delivering_ = sub.get();
    l.unlock();
    Delivery d = sub->cursor->Next();
    if (!d.empty()) sub->callback(d);
    l.lock();
    delivering_ = nullptr;
    if (!d.status.ok()) {
      sub->failed = true;
    } else if (!d.empty() && !sub->cancelled && !sub->queued) {
      sub->queued = true;  // there may be more; come back after the others
      ready_.push_back(sub);
    }
    sub_cv_.notify_all();
  }
}

void Journal::Unsubscribe(const std::shared_ptr<SubState>& sub) {
  std::unique_lock<std::mutex> l(sub_mu_);
  sub->cancelled = true;
  if (auto it = subs_.find(sub->device); it != subs_.end()) {
    it->second.erase(sub);
    if (it->second.empty()) subs_.erase(it);
  }
  if (std::this_thread::get_id() == delivery_.get_id()) return;  // from its callback
  sub_cv_.wait(l, [&] { return delivering_ != sub.get(); });
}

Subscription::Subscription(Journal* journal, std::shared_ptr<internal::SubState> state)
    : journal_(journal), state_(std::move(state)) {}

Subscription::~Subscription() { journal_->Unsubscribe(state_); }

}  // namespace cairn::journal
