// cairn: the command line of a Cairn node (see src/node/cli.h).
#include "node/cli.h"

int main(int argc, char** argv) { return cairn::node::RunCli(argc, argv); }
