// Replays the committed corpus of every fuzz target (tests/fuzz/corpus/<target>)
// under the normal sanitizer build, then a bounded number of seeded mutations of
// each input: the smoke run of the fuzz targets inside bin/test, without clang.
// A crash found by libFuzzer is fixed and its input added to the corpus, so it
// is replayed here for good. Replay a failure with the printed seed.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "base/rng.h"
#include "fuzz_entries.h"

namespace cairn::fuzz {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> Corpus(const std::string& target) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(fs::path(CAIRN_FUZZ_CORPUS_DIR) / target)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> out;
  for (const auto& p : files) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    out.push_back(ss.str());
  }
  return out;
}

// A few random edits that keep most of a structured input intact.
std::string Edit(Rng& rng, std::string s) {
  for (uint64_t n = 1 + rng.Uniform(3); n > 0; --n) {
    if (s.empty()) s.push_back(static_cast<char>(rng.Next()));
    const size_t at = rng.Uniform(s.size());
    const uint64_t how = rng.Uniform(4);
    if (how == 0) s[at] = static_cast<char>(s[at] ^ (1u << rng.Uniform(8)));
    if (how == 1) s[at] = static_cast<char>(rng.Next());
    if (how == 2) s.erase(at, 1 + rng.Uniform(8));
    if (how == 3) s.insert(at, s.substr(rng.Uniform(s.size()), 1 + rng.Uniform(16)));
  }
  return s;
}

class CorpusTest : public ::testing::TestWithParam<const char*> {};

TEST_P(CorpusTest, SeedsAndTheirMutationsRunClean) {
  const FuzzEntry entry = EntryNamed(GetParam());
  ASSERT_NE(entry, nullptr);
  const std::vector<std::string> corpus = Corpus(GetParam());
  ASSERT_FALSE(corpus.empty()) << "no corpus for " << GetParam();
  auto feed = [&](const std::string& in) {
    entry(reinterpret_cast<const uint8_t*>(in.data()), in.size());
  };
  for (const auto& in : corpus) feed(in);
  const uint64_t seed = 20240801;
  SCOPED_TRACE("seed=" + std::to_string(seed));
  Rng rng(seed);
  // Bounded in count and in time: a few seconds per target under ASan.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  int runs = 0;
  for (; runs < 3000 && std::chrono::steady_clock::now() < until; ++runs) {
    feed(Edit(rng, corpus[rng.Uniform(corpus.size())]));
  }
  std::cout << GetParam() << ": " << corpus.size() << " seeds, " << runs
            << " mutations\n";
}

INSTANTIATE_TEST_SUITE_P(Targets, CorpusTest,
                         ::testing::Values("frames", "channel", "messages", "control",
                                           "records", "snapshot"),
                         [](const auto& param_info) {
                           return std::string(param_info.param);
                         });

}  // namespace
}  // namespace cairn::fuzz
