#include "node/cli.h"

#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>

#include "node/cli_internal.h"
#include "node/control_client.h"
#include "sync/interest.h"

namespace cairn::node {
namespace cli {
namespace {

using nlohmann::json;

Result<wire::ControlReply> CallNode(const Options& o, wire::ControlRequest req) {
  CAIRN_ASSIGN_OR_RETURN(auto client, ControlClient::Connect(o.data_dir));
  return client->Call(std::move(req));
}

}  // namespace

int StatusCmd(const Options& o) {
  wire::ControlRequest req;
  req.mutable_status();
  auto r = CallNode(o, req);
  if (!r.ok()) return Fail(r.status());
  const auto& s = r->status();
  if (o.json) {
    std::printf("%s\n", Dump(StatusJson(s)).c_str());
    return 0;
  }
  std::printf("node %s  listening on %s\n", s.node().c_str(),
              s.listen().empty() ? "-" : s.listen().c_str());
  std::printf("following %s (%s)\n", InterestText(s.interest()).c_str(),
              s.interest().origin().c_str());
  if (!s.crl().empty()) {
    std::printf("revocation list %s; %u peer(s) disconnected as revoked\n",
                s.crl().c_str(), s.revoked_disconnects());
  }
  std::printf("traffic: %llu messages (%llu bytes) sent, %llu (%llu bytes) received\n",
              static_cast<unsigned long long>(s.messages_sent()),
              static_cast<unsigned long long>(s.bytes_sent()),
              static_cast<unsigned long long>(s.messages_received()),
              static_cast<unsigned long long>(s.bytes_received()));
  const auto& cat = s.catalogue();
  std::printf(
      "catalogues: %llu summaries sent, %llu received (%llu buckets agreed, %llu asked "
      "for); %llu entries sent, %llu received whole; %llu bytes sent, %llu received\n",
      static_cast<unsigned long long>(cat.summaries_sent()),
      static_cast<unsigned long long>(cat.summaries_received()),
      static_cast<unsigned long long>(cat.buckets_agreed()),
      static_cast<unsigned long long>(cat.buckets_asked()),
      static_cast<unsigned long long>(cat.entries_sent()),
      static_cast<unsigned long long>(cat.entries_received()),
      static_cast<unsigned long long>(cat.bytes_sent()),
      static_cast<unsigned long long>(cat.bytes_received()));
  for (const auto& p : s.peers()) {
    char rtt[32] = "-";
    if (p.rtt_us() > 0) std::snprintf(rtt, sizeof rtt, "%.2f", p.rtt_us() / 1000.0);
    std::printf("peer %-20s %-22s %-11s %6llds rtt %6s ms  %s\n", p.id().c_str(),
                p.address().c_str(), p.state().c_str(),
                static_cast<long long>(p.since_ms() / 1000), rtt, p.reason().c_str());
  }
  for (const auto& d : s.devices()) {
    std::printf(
        "device %-20s first %llu last %llu snapshot %llu %s\n", d.device().c_str(),
        static_cast<unsigned long long>(d.first()),
        static_cast<unsigned long long>(d.last()),
        static_cast<unsigned long long>(d.snapshot()),
        d.source() ? "source" : ("via " + (d.via().empty() ? "?" : d.via())).c_str());
    if (d.forked_at_size() > 0) {
      std::string seqs;
      for (uint64_t seq : d.forked_at())
        seqs += (seqs.empty() ? "" : ", ") + std::to_string(seq);
      std::printf(
          "  FORKED at seq %s: two validly signed histories; this node kept its "
          "own%s\n",
          seqs.c_str(),
          d.source() ? " (its own device: a restored or duplicated "
                       "source)"
                     : "");
    }
    if (!d.guard().empty()) {
      std::printf(
          "  appends refused (restore guard): %s; `cairn guard release %s` "
          "starts it without them\n",
          d.guard().c_str(), d.device().c_str());
    }
    if (!d.stalled().empty()) std::printf("  STALLED: %s\n", d.stalled().c_str());
    if (!d.retention().empty()) std::printf("  retention: %s\n", d.retention().c_str());
  }
  return 0;
}

int KvGet(const Options& o) {
  wire::ControlRequest req;
  req.mutable_kv_get()->set_device(o.device);
  req.mutable_kv_get()->set_store(o.store);
  req.mutable_kv_get()->set_key(o.key);
  auto r = CallNode(o, req);
  if (!r.ok()) return Fail(r.status());
  if (!r->kv().found() || r->kv().items_size() == 0) {
    return Fail("no key '" + o.key + "' in store '" + o.store + "' of device '" +
                o.device + "'");
  }
  std::printf("%s\n", Dump(PayloadJson(r->kv().items(0).value())).c_str());
  return 0;
}

int KvList(const Options& o) {
  auto client = ControlClient::Connect(o.data_dir);
  if (!client.ok()) return Fail(client.status());
  std::string after;
  for (;;) {  // pages until a short one
    wire::ControlRequest req;
    auto* q = req.mutable_kv_list();
    q->set_device(o.device);
    q->set_store(o.store);
    q->set_start_after(after);
    auto r = (*client)->Call(req);
    if (!r.ok()) return Fail(r.status());
    for (const auto& it : r->kv().items()) {
      json value = PayloadJson(it.value());
      if (o.json) {
        std::printf(
            "%s\n",
            Dump({{"key", it.key()}, {"value", value}, {"rev", it.rev()}}).c_str());
      } else {
        std::printf("%s\t%s\n", it.key().c_str(), Dump(value).c_str());
      }
      after = it.key();
    }
    if (r->kv().items_size() == 0) return 0;
  }
}

int Snapshot(const Options& o) {
  wire::ControlRequest req;
  req.mutable_snapshot()->set_device(o.device);
  auto r = CallNode(o, req);
  if (!r.ok()) return Fail(r.status());
  std::printf("%llu\n", static_cast<unsigned long long>(r->snapshot().seq()));
  return 0;
}

int Verify(const Options& o) {
  wire::ControlRequest req;
  req.mutable_verify()->set_device(o.device);
  auto r = CallNode(o, req);
  if (!r.ok()) return Fail("verify " + o.device + " failed: " + r.status().message());
  std::printf("%s: ok through seq %llu\n", o.device.c_str(),
              static_cast<unsigned long long>(r->verify().last()));
  return 0;
}

int GuardRelease(const Options& o) {
  wire::ControlRequest req;
  req.mutable_guard_release()->set_device(o.device);
  auto r = CallNode(o, req);
  if (!r.ok())
    return Fail("guard release " + o.device + " failed: " + r.status().message());
  std::printf("%s: appends accepted; the next seq follows what this node holds\n",
              o.device.c_str());
  return 0;
}

int Resync(const Options& o) {
  wire::ControlRequest req;
  req.mutable_resync()->set_device(o.device);
  auto r = CallNode(o, req);
  if (!r.ok()) return Fail("resync " + o.device + " failed: " + r.status().message());
  std::printf(
      "%s: the next snapshot beyond this node's head is accepted without a check; "
      "the events it stands for that this node holds are deleted then\n",
      o.device.c_str());
  return 0;
}

std::string InterestText(const wire::ControlInterest& i) {
  if (i.follow_size() == 0) return "no device but this node's own";
  if (i.follow_size() == 1 && i.follow(0) == "*") return "every device";
  std::string out;
  for (const auto& p : i.follow()) out += (out.empty() ? "" : " ") + p;
  return out;
}

// follow/unfollow: the patterns are checked here first, for a usage error
// before any request; the node checks them again.
int Follow(const Options& o, bool unfollow) {
  for (const auto& p : o.patterns) {
    if (Status s = sync::Interest::CheckPattern(p); !s.ok()) return Fail(s);
  }
  if (unfollow && o.patterns.empty()) return Fail("unfollow: name at least one pattern");
  if (o.reset && (o.only || !o.patterns.empty())) {
    return Fail("follow --reset takes no pattern and no --only");
  }
  wire::ControlRequest req;
  auto* f = req.mutable_follow();
  for (const auto& p : o.patterns) f->add_patterns(p);
  f->set_unfollow(unfollow);
  f->set_reset(o.reset);
  f->set_only(o.only);
  auto r = CallNode(o, req);
  if (!r.ok()) {
    return Fail(std::string(unfollow ? "unfollow" : "follow") +
                " failed: " + r.status().message());
  }
  const auto& i = r->interest();
  if (o.json) {
    std::printf("%s\n",
                Dump(nlohmann::json{{"follow", std::vector<std::string>(
                                                   i.follow().begin(), i.follow().end())},
                                    {"origin", i.origin()}})
                    .c_str());
  } else {
    std::printf("following %s (%s)\n", InterestText(i).c_str(), i.origin().c_str());
  }
  return 0;
}

}  // namespace cli

namespace {

using cli::Options;

CLI::App* Add(CLI::App& app, const char* name, const char* what) {
  CLI::App* sub = app.add_subcommand(name, what);
  sub->fallthrough();  // --data may follow the command
  return sub;
}

void AddCommands(CLI::App& app, Options& o) {
  CLI::App* a =
      Add(app, "append", "append events to a device this node is the source of");
  a->add_option("DEVICE", o.device, "device id")->required();
  a->add_option("TYPE", o.type, "event type (single event)");
  a->add_option("PAYLOAD", o.payload, "event payload (single event)");
  a->add_flag(
      "--stdin", o.stdin_mode,
      "read JSON lines {\"type\": ..., \"payload\": ...} and append them in batches");
  a->add_flag("--json", o.json,
              "--stdin: print {\"device\", \"first\", \"last\"} per batch");
  a->add_option("--batch", o.batch, "--stdin: events per batch at most")
      ->capture_default_str();
  CLI::App* t = Add(app, "tail", "print a device's events (and snapshot) in order");
  t->add_option("DEVICE", o.device, "device id");
  t->add_flag("--all", o.all, "every device this node stores");
  t->add_option("--from", o.from, "first seq")->capture_default_str();
  t->add_flag("--follow", o.follow, "keep printing live events until interrupted");
  t->add_flag("--json", o.json, "one JSON object per line");
  t->add_flag("--allow-gaps", o.allow_gaps,
              "events deleted by retention are reported but not an error (without "
              "it the tail stops there and exits 3)");
  t->add_option("--peer", o.peer,
                "read from the node at HOST:PORT over TLS, verifying everything, "
                "instead of the local node");
  t->add_option("--ca", o.ca_file, "--peer: the network CA (PEM)");
  t->add_option("--cert", o.cert_file, "--peer: our node certificate (PEM)");
  t->add_option("--key", o.key_file, "--peer: its private key (PEM)");
  CLI::App* s = Add(app, "status", "the node, its peers and its devices");
  s->add_flag("--json", o.json, "as one JSON object");
  CLI::App* kv = Add(app, "kv", "read a device's key-value view");
  kv->require_subcommand(1);
  CLI::App* get = Add(*kv, "get", "print a value as JSON (exit 1 when absent)");
  get->add_option("DEVICE", o.device, "device id")->required();
  get->add_option("STORE", o.store, "store")->required();
  get->add_option("KEY", o.key, "key")->required();
  CLI::App* list = Add(*kv, "list", "print every live key of a store");
  list->add_option("DEVICE", o.device, "device id")->required();
  list->add_option("STORE", o.store, "store")->required();
  list->add_flag("--json", o.json, "one {\"key\", \"value\", \"rev\"} per line");
  CLI::App* snap = Add(app, "snapshot", "snapshot a source device now; prints its seq");
  snap->add_option("DEVICE", o.device, "device id")->required();
  CLI::App* ver = Add(app, "verify", "re-check chain and signatures of a stored device");
  ver->add_option("DEVICE", o.device, "device id")->required();
  CLI::App* guard = Add(app, "guard", "the restore guard of a source device");
  guard->require_subcommand(1);
  CLI::App* release = Add(*guard, "release",
                          "accept appends now, without waiting for peers to report the "
                          "device's head (seqs they hold beyond ours become a fork)");
  release->add_option("DEVICE", o.device, "device id")->required();
  CLI::App* resync =
      Add(app, "resync",
          "accept a gap in a replicated device: install the next snapshot beyond our "
          "head although the events between are gone on every peer (our events "
          "below it are deleted; see `cairn status`, STALLED)");
  resync->add_option("DEVICE", o.device, "device id")->required();
  CLI::App* follow =
      Add(app, "follow",
          "add patterns to what this node follows and stores ('*', a device id, a "
          "glob, group:NAME); none: print it. Stored in DATA/interest, it wins over "
          "--follow");
  follow->add_option("PATTERN", o.patterns, "patterns to add");
  follow->add_flag("--only", o.only,
                   "follow these patterns alone, replacing the interest at once (none: "
                   "no device but this node's own)");
  follow->add_flag("--reset", o.reset,
                   "forget what cairn follow/unfollow stored: back to --follow");
  follow->add_flag("--json", o.json, "print {\"follow\", \"origin\"}");
  CLI::App* unfollow =
      Add(app, "unfollow",
          "remove patterns from what this node follows; streams it then no longer "
          "covers are deleted here (not its own devices)");
  unfollow->add_option("PATTERN", o.patterns, "patterns to remove")->required();
  unfollow->add_flag("--json", o.json, "print {\"follow\", \"origin\"}");
}

int Dispatch(CLI::App& app, const Options& o) {
  if (app.got_subcommand("append")) return cli::Append(o);
  if (app.got_subcommand("tail")) return cli::Tail(o);
  if (app.got_subcommand("status")) return cli::StatusCmd(o);
  if (app.got_subcommand("snapshot")) return cli::Snapshot(o);
  if (app.got_subcommand("verify")) return cli::Verify(o);
  if (app.got_subcommand("guard")) return cli::GuardRelease(o);
  if (app.got_subcommand("resync")) return cli::Resync(o);
  if (app.got_subcommand("follow")) return cli::Follow(o, false);
  if (app.got_subcommand("unfollow")) return cli::Follow(o, true);
  CLI::App* kv = app.get_subcommand("kv");
  if (kv->got_subcommand("get")) return cli::KvGet(o);
  return cli::KvList(o);
}

}  // namespace

int RunCli(int argc, const char* const* argv) {
  CLI::App app{"cairn: append to, read and inspect a local Cairn node", "cairn"};
  Options o;
  if (const char* env = std::getenv("CAIRN_DATA"); env != nullptr && *env != '\0') {
    o.data_dir = env;
  }
  app.add_option("--data", o.data_dir,
                 "the node's data directory (default ./data or $CAIRN_DATA)");
  app.require_subcommand(1);
  AddCommands(app, o);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  signal(SIGPIPE, SIG_IGN);
  return Dispatch(app, o);
}

}  // namespace cairn::node
