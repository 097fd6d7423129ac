// Planted bugs: defects put into the code on purpose, so that the simulator
// (tests/sim) can show that its checks find them. They are compiled in only
// when CAIRN_PLANTS is defined (the test build, bin/test); there, each is off
// until switched on by name at run time (`tests/sim/run --plant NAME`). In any
// other build On() is a constant false and the planted branches vanish.
//
// Thread-safety: Set before the code under test runs; On from any thread.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cairn::plant {

// Every plant, with the guarantee it breaks.
const std::vector<std::pair<std::string, std::string>>& All();

#ifdef CAIRN_PLANTS
inline constexpr bool kCompiledIn = true;
bool On(std::string_view name);
// Switches `name` on ("" switches every plant off). False for an unknown name.
bool Set(std::string_view name);
#else
inline constexpr bool kCompiledIn = false;
constexpr bool On(std::string_view) { return false; }
inline bool Set(std::string_view name) { return name.empty(); }
#endif

}  // namespace cairn::plant
