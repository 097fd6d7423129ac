#include "node/daemon.h"

#include <signal.h>
#include <sys/stat.h>

#include <iostream>

#include "node/config.h"
#include "node/dev_certs.h"
#include "node/log.h"
#include "node/node.h"

namespace cairn::node {

int RunDaemon(int argc, const char* const* argv) {
  ParsedFlags parsed = ParseDaemonFlags(argc, argv);
  if (!parsed.config) return parsed.exit_code;
  const DaemonConfig& config = *parsed.config;
  SetLogLevel(*ParseLogLevel(config.log_level));
  signal(SIGPIPE, SIG_IGN);  // a vanished control client is an error return, not a kill
  umask(077);  // the journal, logs and dev keys cairnd writes are its user's alone
  auto node = Node::Open(config);
  if (!node.ok()) {
    std::cerr << "cairnd: " << node.status().message() << std::endl;
    return 1;
  }
  if (config.dev) {
    CAIRN_LOG(kInfo) << "dev node " << (*node)->node_id() << " ready; try:\n"
                     << "  cairn --data " << config.data_dir << " append "
                     << (*node)->node_id() << " note '{\"hello\":1}'\n"
                     << "  cairn --data " << config.data_dir << " tail "
                     << (*node)->node_id() << " --follow";
  }
  CAIRN_LOG(kInfo) << "ready: control socket " << (*node)->control_path();
  return (*node)->Run();
}

}  // namespace cairn::node
