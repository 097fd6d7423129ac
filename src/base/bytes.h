// Byte helpers: big-endian fixed-width integers (so byte order is numeric order in
// LevelDB keys), length-prefixed strings, and hex for messages.
//
// Decoders take a std::string_view cursor and advance it; they return false when
// the input is too short, never read past its end.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cairn {

void PutU32BE(std::string* dst, uint32_t v);
void PutU64BE(std::string* dst, uint64_t v);
// 32-bit big-endian length, then the bytes.
void PutLengthPrefixed(std::string* dst, std::string_view bytes);

bool GetU32BE(std::string_view* in, uint32_t* v);
bool GetU64BE(std::string_view* in, uint64_t* v);
bool GetLengthPrefixed(std::string_view* in, std::string_view* bytes);

std::string ToHex(std::string_view bytes);
// Hex of the first `n` bytes, for log lines ("a3f09c1e").
std::string ShortHex(std::string_view bytes, size_t n = 4);

}  // namespace cairn
