// RunCli: the `cairn` command line (append, tail, status, kv get/list, snapshot,
// verify), talking to the local node through DATA/cairn.sock. The forms are the
// contract of issue 6; every error names what was wrong and exits non-zero.
//
// Thread-safety: call once, from main.
#pragma once

namespace cairn::node {

int RunCli(int argc, const char* const* argv);

}  // namespace cairn::node
