// The requests of the control socket: what each one asks of the journal, and on
// which thread it runs (see control_server_uv.h).
#include <utility>
#include <vector>

#include "node/control_client_state.h"
#include "node/control_server_uv.h"
#include "node/log.h"

namespace cairn::node {
namespace {

using wire::ControlReply;
using wire::ControlRequest;

ControlReply Done(uint64_t id) {
  ControlReply r;
  r.set_id(id);
  r.set_done(true);
  return r;
}

ControlReply KvGet(journal::Journal& j, uint64_t id, const wire::ControlKvGet& q) {
  auto got = j.KvGet(q.device(), q.store(), q.key());
  if (!got.ok()) return ErrorReply(id, got.status());
  ControlReply r = Done(id);
  auto* kv = r.mutable_kv();
  kv->set_found(got->has_value());
  if (got->has_value()) {
    auto* item = kv->add_items();
    item->set_store((*got)->store);
    item->set_key((*got)->key);
    item->set_value((*got)->value);
    item->set_rev((*got)->rev);
    item->set_expiry_us((*got)->expiry_us);
  }
  return r;
}

ControlReply KvList(journal::Journal& j, uint64_t id, const wire::ControlKvList& q) {
  uint32_t limit = q.limit() == 0
                       ? ControlServer::kDefaultKvListLimit
                       : std::min(q.limit(), ControlServer::kDefaultKvListLimit);
  auto got = j.KvList(q.device(), q.store(), q.start_after(), limit);
  if (!got.ok()) return ErrorReply(id, got.status());
  ControlReply r = Done(id);
  auto* kv = r.mutable_kv();
  kv->set_found(!got->empty());
  for (const auto& it : *got) {
    auto* item = kv->add_items();
    item->set_store(it.store);
    item->set_key(it.key);
    item->set_value(it.value);
    item->set_rev(it.rev);
    item->set_expiry_us(it.expiry_us);
  }
  return r;
}

// Runs on the thread pool: reads, snapshots and verification may block.
ControlReply Blocking(journal::Journal& j, const ControlRequest& q) {
  uint64_t id = q.id();
  if (q.has_kv_get() || q.has_kv_list()) {
    auto known = j.Stream(q.has_kv_get() ? q.kv_get().device() : q.kv_list().device());
    if (!known.ok()) return ErrorReply(id, known.status());
  }
  switch (q.req_case()) {
    case ControlRequest::kKvGet:
      return KvGet(j, id, q.kv_get());
    case ControlRequest::kKvList:
      return KvList(j, id, q.kv_list());
    case ControlRequest::kSnapshot: {
      auto seq = j.Snapshot(q.snapshot().device());
      if (!seq.ok()) return ErrorReply(id, seq.status());
      ControlReply r = Done(id);
      r.mutable_snapshot()->set_seq(*seq);
      return r;
    }
    case ControlRequest::kVerify: {
      Status s = j.Verify(q.verify().device());
      if (!s.ok()) return ErrorReply(id, s);
      auto info = j.Stream(q.verify().device());
      ControlReply r = Done(id);
      r.mutable_verify()->set_last(info.ok() ? info->last : 0);
      return r;
    }
    default:
      return ErrorReply(id, Status::InvalidArgument("not a read request"));
  }
}

}  // namespace

std::string CodeName(const Status& s) {
  std::string name = Status::CodeName(s.code());
  return name;
}

ControlReply ErrorReply(uint64_t id, const Status& s) {
  ControlReply r = Done(id);
  r.mutable_error()->set_code(CodeName(s));
  r.mutable_error()->set_message(s.message());
  return r;
}

void ControlServer::Dispatch(Client& c, ControlRequest&& req) {
  uint64_t id = req.id();
  switch (req.req_case()) {
    case ControlRequest::kAppend:
      return HandleAppend(c, id, std::move(*req.mutable_append()));
    case ControlRequest::kStatus:
      return HandleStatus(c, id);
    case ControlRequest::kTail:
      return HandleTail(c, id, req.tail());
    case ControlRequest::kWatch:
      return HandleWatch(c, id);
    case ControlRequest::kGuardRelease:
      return HandleGuardRelease(c, id, req.guard_release().device());
    case ControlRequest::kResync:
      return HandleResync(c, id, req.resync().device());
    case ControlRequest::kFollow:
      return HandleFollow(c, id, req.follow());
    case ControlRequest::kKvGet:
    case ControlRequest::kKvList:
    case ControlRequest::kSnapshot:
    case ControlRequest::kVerify:
      return HandleRead(c, id, std::move(req));
    case ControlRequest::REQ_NOT_SET:
      break;
  }
  Finish(c, id, ErrorReply(id, Status::InvalidArgument("unknown control request")));
}

void ControlServer::HandleAppend(Client& c, uint64_t id, wire::ControlAppend&& req) {
  if (req.events_size() == 0) {
    return Finish(c, id, ErrorReply(id, Status::InvalidArgument("append of no events")));
  }
  std::vector<journal::NewEvent> events;
  events.reserve(req.events_size());
  for (auto& e : *req.mutable_events()) {
    events.push_back({std::move(*e.mutable_type()), std::move(*e.mutable_payload())});
  }
  ++pending_;  // Close waits for the journal's answer
  uint64_t client = c.id;
  std::string device = req.device();
  journal_->AppendAsync(  // the callback runs on the journal's writer thread
      std::move(device), std::move(events),
      [this, client, id, dev = req.device()](Result<journal::SeqRange> r) {
        ControlReply reply = Done(id);
        if (r.ok()) {
          reply.mutable_appended()->set_device(dev);
          reply.mutable_appended()->set_first(r->first);
          reply.mutable_appended()->set_last(r->last);
        } else {
          reply = ErrorReply(id, r.status());
        }
        post_->Post([this, client, reply = std::move(reply)] {
          Reply(client, reply);
          --pending_;
          MaybeDone();
        });
      });
}

// 100,000 devices are about 10 MiB of status: the devices go in parts of
// kStatusDevicesPerReply, each its own reply (done on the last), and the client
// joins them (ControlClient::Call). The first part carries the rest.
void ControlServer::HandleStatus(Client& c, uint64_t id) {
  wire::ControlStatusReply status = status_();
  auto devices = std::move(*status.mutable_devices());
  status.clear_devices();
  int next = 0;
  for (bool first = true; first || next < devices.size(); first = false) {
    ControlReply r;
    r.set_id(id);
    wire::ControlStatusReply* part = r.mutable_status();
    if (first) *part = std::move(status);
    for (int n = 0; n < kStatusDevicesPerReply && next < devices.size(); ++n, ++next) {
      *part->add_devices() = std::move(devices[next]);
    }
    if (next < devices.size()) {
      if (Send(c.id, r) == SendResult::kGone) return Finish(c, id, Done(id));
      continue;
    }
    r.set_done(true);
    Finish(c, id, r);
  }
}

void ControlServer::HandleGuardRelease(Client& c, uint64_t id,
                                       const std::string& device) {
  Status s = guard_releaser_ ? guard_releaser_(device)
                             : Status::NotFound("this node runs no restore guard");
  if (!s.ok()) return Finish(c, id, ErrorReply(id, s));
  CAIRN_LOG(kWarn) << "restore guard of '" << device
                   << "' released by the operator (cairn guard release)";
  ControlReply r = Done(id);
  r.mutable_guard_released()->set_device(device);
  Finish(c, id, r);
}

void ControlServer::HandleResync(Client& c, uint64_t id, const std::string& device) {
  Status s =
      resyncer_ ? resyncer_(device) : Status::NotFound("this node syncs with no peer");
  if (!s.ok()) return Finish(c, id, ErrorReply(id, s));
  CAIRN_LOG(kWarn)
      << "resync of '" << device
      << "' accepted by the operator (cairn resync): the next snapshot beyond "
         "our head is installed unchecked";
  ControlReply r = Done(id);
  r.mutable_resynced()->set_device(device);
  Finish(c, id, r);
}

void ControlServer::HandleFollow(Client& c, uint64_t id, const wire::ControlFollow& req) {
  if (!follower_) {
    return Finish(c, id,
                  ErrorReply(id, Status::NotFound("this node syncs with no peer")));
  }
  auto interest = follower_(req);
  if (!interest.ok()) return Finish(c, id, ErrorReply(id, interest.status()));
  ControlReply r = Done(id);
  *r.mutable_interest() = std::move(*interest);
  Finish(c, id, r);
}

void ControlServer::HandleRead(Client& c, uint64_t id, ControlRequest&& req) {
  auto shared = std::make_shared<ControlRequest>(std::move(req));
  auto reply = std::make_shared<ControlReply>();
  uint64_t client = c.id;
  Offload([j = journal_, shared, reply] { *reply = Blocking(*j, *shared); },
          [this, client, reply] { Reply(client, *reply); });
  (void)id;
}

void ControlServer::HandleTail(Client& c, uint64_t id, const wire::ControlTail& req) {
  --c.in_flight;  // tails are counted apart
  if (c.tails.size() >= kMaxTailsPerClient || c.tails.count(id) != 0) {
    Send(c.id,
         ErrorReply(id, Status::ResourceExhausted("too many tails, or a reused id")));
    return;
  }
  auto tail = std::make_shared<Tail>(this, c.id, id, req.device(),
                                     std::max<uint64_t>(req.from(), 1), req.follow());
  c.tails.emplace(id, tail);
  tail->Start();
}

void ControlServer::HandleWatch(Client& c, uint64_t id) {
  --c.in_flight;  // like tails, watches are counted apart
  if (c.watches.size() >= kMaxWatchesPerClient || c.watches.count(id) != 0) {
    Send(c.id,
         ErrorReply(id, Status::ResourceExhausted("too many watches, or a reused id")));
    return;
  }
  c.watches.insert(id);
}

void ControlServer::OnStreamChanged(const std::string& device) {
  if (!known_devices_.insert(device).second) return;
  for (auto& [cid, c] : clients_) {
    for (uint64_t id : c->watches) {
      ControlReply r;
      r.set_id(id);
      r.mutable_device_added()->set_device(device);
      Send(cid, r);
    }
  }
}

void ControlServer::TailFinished(uint64_t client, uint64_t request) {
  auto it = clients_.find(client);
  if (it == clients_.end()) return;
  it->second->tails.erase(request);
  Settle(*it->second);
}

}  // namespace cairn::node
