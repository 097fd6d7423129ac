// The generated message classes of src/wire/cairn.proto (namespace cairn::wire).
#pragma once

#include "cairn.pb.h"
