// Limits on JSON text checked without recursion, before any recursive library
// call (nlohmann::json's parse, dump, copy and merge_patch recurse once per
// nesting level: a value nested a few hundred thousand levels deep, well under
// the 1 MiB payload limit, overflows the stack).
//
// The journal checks a KV payload with these limits at its source (append is
// refused) and on every replica (a signed record over the limits is stored and
// served as an opaque event): both call the same function on the same bytes, so
// both decide the same. The CLI checks payloads before it parses them to print.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string_view>

namespace cairn {

// Deepest nesting of arrays and objects that Cairn parses as JSON. Protocol
// Buffers' default recursion limit is the same.
inline constexpr size_t kMaxJsonDepth = 100;

// The deepest nesting of '[' and '{' in `text`, outside strings, scanning at
// most until `stop_above` is exceeded (then returns a value > stop_above).
// Does not check that `text` is valid JSON: the parser does that afterwards.
size_t JsonNestingDepth(std::string_view text, size_t stop_above = kMaxJsonDepth);

// True when `text` nests no deeper than kMaxJsonDepth, so that a recursive
// parser may be given it.
inline bool JsonDepthWithinLimit(std::string_view text) {
  return JsonNestingDepth(text) <= kMaxJsonDepth;
}

}  // namespace cairn
