#include "node/config.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <filesystem>
#include <iostream>

#include "sync/interest.h"

namespace cairn::node {
namespace {

bool OnOff(const std::string& v) { return v == "on"; }

struct RawFlags {
  std::string listen;
  std::string peer_exchange = "on";
  std::string sync_writes = "on";
  std::vector<std::string> device_certs, device_keys;
  std::string devices_dir;
};

void AddFlags(CLI::App& app, DaemonConfig& c, RawFlags& raw) {
  app.set_config("--config", "", "TOML file with the same keys as the long flags");
  app.add_option("--data", c.data_dir, "data directory (journal, control socket)")
      ->capture_default_str();
  app.add_option("--listen", raw.listen,
                 "HOST:PORT to accept peers on (default 0.0.0.0:7411; --dev: "
                 "127.0.0.1:7400; port 0: any free port)");
  app.add_option("--advertise", c.advertise,
                 "HOST:PORT peers are told to dial (default: the listen address "
                 "unless it is a wildcard)");
  app.add_option("--peer", c.peers, "HOST:PORT of a peer to dial, repeatable (none)");
  app.add_option("--dns-seed", c.dns_seeds,
                 "DNS name of peers (SRV _cairn._tcp.NAME, then A/AAAA), repeatable");
  app.add_option("--dns-server", c.dns_server, "IP:PORT of the DNS server (system's)");
  app.add_option("--peer-exchange", raw.peer_exchange, "tell peers about peers")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--target-peers", c.target_peers,
                 "peers this node dials up to (others are kept as spares and replace "
                 "those that go; configured --peer seeds are always dialled); 0: every "
                 "peer it learns of")
      ->check(CLI::Range(uint64_t{0}, uint64_t{10'000}))
      ->capture_default_str();
  app.add_option("--max-peers", c.max_peers,
                 "most peers active at once, incoming included; a node past it is "
                 "sent elsewhere with a peer exchange; 0: no limit")
      ->check(CLI::Range(uint64_t{0}, uint64_t{100'000}))
      ->capture_default_str();
  app.add_option("--follow", c.follow,
                 "devices this node follows and stores, repeatable: '*' (every one, "
                 "the default), a device id, a glob ('sensor-*') or 'group:NAME' "
                 "(devices whose certificate names the group); its own devices are "
                 "always kept. `cairn follow` changes it at run time and wins");
  app.add_option("--ca", c.ca_file,
                 "network CA certificate, PEM (required without --dev)");
  app.add_option("--crl", c.crl_file,
                 "revocation list, PEM (certs/revoke.sh); reloaded on SIGHUP");
  app.add_option("--cert", c.cert_file, "this node's certificate, PEM (CN = node id)");
  app.add_option("--key", c.key_file, "this node's private key, PEM");
  app.add_option("--device-cert", raw.device_certs,
                 "certificate of another device this node is the source of, repeatable");
  app.add_option("--device-key", raw.device_keys,
                 "its private key; one per --device-cert, in the same order");
  app.add_option("--devices", raw.devices_dir,
                 "directory of devices this node is the source of: every NAME.crt "
                 "with its NAME.key (certs/make-devices.sh makes many)");
  app.add_option("--snapshot-every", c.snapshot_every,
                 "snapshot a source device every N events (0: never)")
      ->capture_default_str();
  app.add_option("--snapshot-every-seconds", c.snapshot_every_seconds,
                 "snapshot a source device when this long has passed since its "
                 "last one and it has new events (checked on append; 0: never)")
      ->capture_default_str();
  app.add_option("--retain-acks", c.retain_acks,
                 "an event below a snapshot is deleted once this many of the "
                 "stream's known followers hold it (0: all of them; with none "
                 "known, never by acknowledgement)")
      ->capture_default_str();
  app.add_option("--retain-max-age", c.retain_max_age_seconds,
                 "seconds after which an event may be deleted although a follower "
                 "lacks it (0: no limit; the source snapshots first)")
      ->capture_default_str();
  app.add_option("--retain-max-bytes", c.retain_max_bytes,
                 "stored event bytes per stream beyond which the oldest may be "
                 "deleted although a follower lacks them; suffixes KB MB GB (0: no "
                 "limit)")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  app.add_option("--max-snapshot-bytes", c.max_snapshot_bytes,
                 "largest snapshot taken from a peer (staged on disk as it comes); "
                 "suffixes KB MB GB")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint64_t{1} << 20, uint64_t{1} << 50))
      ->capture_default_str();
  app.add_option("--max-staged-bytes", c.max_staged_bytes,
                 "disk that all snapshots being received at once may take; past it "
                 "the peer staging the most is closed; suffixes KB MB GB")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint64_t{1} << 20, uint64_t{1} << 50))
      ->capture_default_str();
  app.add_option("--summary-min-devices", c.summary_min_devices,
                 "a peer offered at least this many devices is sent a summary of "
                 "them first, and then the entries of the buckets where it differs "
                 "(0: always; a large number: never)")
      ->capture_default_str();
  app.add_option("--retain-every-ms", c.retain_every_ms,
                 "how often retention looks for events it may delete")
      ->check(CLI::Range(int64_t{100}, int64_t{3'600'000}))
      ->capture_default_str();
  app.add_option("--sync-writes", raw.sync_writes,
                 "fsync before acknowledging an append (off loses the last few ms "
                 "of appends on power loss)")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_flag("--dev", c.dev,
               "development mode: with no --ca/--cert/--key, make a per-user dev CA "
               "($CAIRN_DEV_CA, else ~/.local/share/cairn/dev-ca) and a node "
               "certificate on first start; listen on 127.0.0.1:7400");
  app.add_flag("--new-device", c.new_device,
               "start appending at once: this node's devices have no history elsewhere");
  app.add_option("--dead-interval-ms", c.dead_interval_ms,
                 "silence after which a peer counts as gone and is redialled; a "
                 "ping goes out after a third of it")
      ->check(CLI::Range(int64_t{300}, int64_t{3'600'000}))
      ->capture_default_str();
  app.add_option("--log-level", c.log_level, "debug, info, warn or error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->capture_default_str();
}

// Applies what the raw flags say; the error text is a usage error.
std::string Finish(DaemonConfig& c, RawFlags& raw) {
  c.peer_exchange = OnOff(raw.peer_exchange);
  if (auto interest = sync::Interest::Parse(c.follow); !interest.ok()) {
    return "--follow: " + interest.status().message();
  }
  c.sync_writes = OnOff(raw.sync_writes);
  if (raw.device_certs.size() != raw.device_keys.size()) {
    return "--device-cert and --device-key must come in pairs";
  }
  for (size_t i = 0; i < raw.device_certs.size(); ++i) {
    c.devices.push_back({raw.device_certs[i], raw.device_keys[i]});
  }
  if (!raw.devices_dir.empty()) {
    namespace fs = std::filesystem;
    std::error_code ec;
    std::vector<DevicePair> found;
    for (fs::directory_iterator it(raw.devices_dir, ec), end; !ec && it != end;
         it.increment(ec)) {
      const fs::path& p = it->path();
      if (p.extension() != ".crt" || p.stem() == "ca") continue;
      fs::path key = p;
      key.replace_extension(".key");
      if (fs::exists(key)) found.push_back({p.string(), key.string()});
    }
    if (ec) return "--devices " + raw.devices_dir + ": " + ec.message();
    if (found.empty()) {
      return "--devices " + raw.devices_dir + ": no NAME.crt with its NAME.key in it";
    }
    std::sort(found.begin(), found.end(),
              [](const DevicePair& a, const DevicePair& b) { return a.cert < b.cert; });
    c.devices.insert(c.devices.end(), found.begin(), found.end());
  }
  if (c.dev) {
    c.listen_host = "127.0.0.1";
    c.listen_port = kDevListenPort;
  }
  if (!raw.listen.empty()) {
    auto hp = SplitHostPort(raw.listen, "--listen");
    if (!hp.ok()) return hp.status().message();
    c.listen_host = hp->first;
    c.listen_port = hp->second;
  }
  bool any_tls = !c.ca_file.empty() || !c.cert_file.empty() || !c.key_file.empty();
  bool all_tls = !c.ca_file.empty() && !c.cert_file.empty() && !c.key_file.empty();
  if (any_tls && !all_tls) return "--ca, --cert and --key go together";
  if (!all_tls && !c.dev) return "give --ca, --cert and --key, or --dev";
  return "";
}

}  // namespace

Result<std::pair<std::string, int>> SplitHostPort(const std::string& text,
                                                  const std::string& what) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    return Status::InvalidArgument(what + " '" + text + "': expected HOST:PORT");
  }
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  for (char ch : text.substr(colon + 1)) {
    if (ch < '0' || ch > '9' || port > 65535) {
      return Status::InvalidArgument(what + " '" + text + "': bad port");
    }
    port = port * 10 + (ch - '0');
  }
  if (port > 65535) return Status::InvalidArgument(what + " '" + text + "': bad port");
  return std::make_pair(host, port);
}

ParsedFlags ParseDaemonFlags(int argc, const char* const* argv) {
  CLI::App app{"cairnd: the Cairn journal daemon", "cairnd"};
  DaemonConfig c;
  RawFlags raw;
  AddFlags(app, c, raw);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return {std::nullopt, app.exit(e)};
  }
  std::string error = Finish(c, raw);
  if (!error.empty()) {
    std::cerr << "cairnd: " << error << "\n";
    return {std::nullopt, 2};
  }
  return {std::move(c), 0};
}

}  // namespace cairn::node
