// Runs the fuzz entry points over a few thousand seeded inputs — random bytes, and
// valid streams and real ClientHellos mutated — so every test run exercises them
// without clang's libFuzzer. Replay a failure with the printed seed.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/rng.h"
#include "fuzz_entries.h"
#include "testutil/pki.h"
#include "tls/channel.h"
#include "wire/frame.h"
#include "wire/schema.h"

namespace cairn::fuzz {
namespace {

std::string RandomBytes(Rng& rng, size_t max) {
  std::string s(rng.Uniform(max + 1), '\0');
  for (char& c : s) c = static_cast<char>(rng.Next());
  return s;
}

wire::Envelope RandomEnvelope(Rng& rng) {
  wire::Envelope e;
  switch (rng.Uniform(5)) {
    case 0:
      e.mutable_ping()->set_nonce(rng.Next());
      break;
    case 1:
      e.mutable_goodbye()->set_reason(RandomBytes(rng, 40));
      break;
    case 2: {
      wire::Events* ev = e.mutable_events();
      ev->set_device("d" + std::to_string(rng.Uniform(100)));
      for (uint64_t i = rng.Uniform(4); i > 0; --i) {
        wire::Record* r = ev->add_records();
        r->set_seq(rng.Next());
        r->set_payload(RandomBytes(rng, 200));
      }
      break;
    }
    case 3:
      e.mutable_hello()->set_node_id("n" + std::to_string(rng.Uniform(100)));
      break;
    default:
      break;  // an empty Envelope
  }
  return e;
}

void Mutate(Rng& rng, std::string& s) {
  for (uint64_t m = rng.Uniform(4); m > 0 && !s.empty(); --m) {
    size_t at = rng.Uniform(s.size());
    switch (rng.Uniform(5)) {
      case 0:
        s[at] = static_cast<char>(s[at] ^ (1 << rng.Uniform(8)));
        break;
      case 1:
        s.resize(at);
        break;
      case 2:
        s.insert(at, 1, static_cast<char>(rng.Next()));
        break;
      case 3:  // a frame length, most likely
        s[at] = static_cast<char>(rng.Next());
        break;
      default:
        s += s.substr(at, 64);
        break;
    }
  }
}

int Feed(int (*entry)(const uint8_t*, size_t), const std::string& input) {
  return entry(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

TEST(FuzzRegressionTest, FramesSurviveRandomAndMutatedStreams) {
  const uint64_t seed = 20240601;
  SCOPED_TRACE("seed=" + std::to_string(seed));
  Rng rng(seed);
  for (int i = 0; i < 1500; ++i) Feed(FuzzFrames, RandomBytes(rng, 600));
  for (int i = 0; i < 2500; ++i) {
    std::string stream(1, static_cast<char>(rng.Next()));  // the cut seed
    for (uint64_t f = 1 + rng.Uniform(5); f > 0; --f) {
      ASSERT_TRUE(
          wire::EncodeFrame(RandomEnvelope(rng).SerializeAsString(), &stream).ok());
    }
    Mutate(rng, stream);
    Feed(FuzzFrames, stream);
  }
}

TEST(FuzzRegressionTest, ChannelSurvivesRandomAndMutatedClientHellos) {
  const uint64_t seed = 20240602;
  SCOPED_TRACE("seed=" + std::to_string(seed));
  Rng rng(seed);
  testutil::TestPki pki("client-ca");
  testutil::Issued id = pki.Issue("client");
  auto ctx = tls::Context::FromPem({pki.ca_cert_pem(), id.cert_pem, id.key_pem});
  ASSERT_TRUE(ctx.ok());
  for (int i = 0; i < 300; ++i) Feed(FuzzChannel, RandomBytes(rng, 600));
  for (int i = 0; i < 700; ++i) {
    tls::Channel client(**ctx, tls::Channel::Role::kClient);
    ASSERT_TRUE(client.Start().ok());
    std::string hello = client.TakeCiphertext();
    Mutate(rng, hello);
    Feed(FuzzChannel, hello);
  }
}

}  // namespace
}  // namespace cairn::fuzz
