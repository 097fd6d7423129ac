// RunDaemon: cairnd's main: parse flags, open the node, run it, and turn every
// start-up failure into one line on stderr and a non-zero exit status.
//
// Thread-safety: call once, from main.
#pragma once

namespace cairn::node {

int RunDaemon(int argc, const char* const* argv);

}  // namespace cairn::node
