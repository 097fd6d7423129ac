// cairnd: the Cairn journal daemon (see src/node/daemon.h).
#include "node/daemon.h"

int main(int argc, char** argv) { return cairn::node::RunDaemon(argc, argv); }
