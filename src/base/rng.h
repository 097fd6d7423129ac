// Rng: a small seeded pseudo-random generator (xoshiro256**), so that every random
// choice in protocol code (backoff jitter, simulation) can be replayed from a seed.
//
// Thread-safety: none; give each owner its own Rng.
#pragma once

#include <cstdint>

namespace cairn {

class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t Next();
  // Uniform in [0, bound). REQUIRES: bound > 0.
  uint64_t Uniform(uint64_t bound);
  // Uniform in [0, 1).
  double NextDouble();
  uint64_t seed() const { return seed_; }

 private:
  uint64_t seed_;
  uint64_t s_[4];
};

}  // namespace cairn
