#include "fuzz_entries.h"

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/check.h"
#include "base/rng.h"
#include "testutil/pki.h"
#include "tls/channel.h"
#include "tls/frame_reader.h"

namespace cairn::fuzz {
namespace {

constexpr size_t kMaxFrameBytes = 4096;

// What a reader made of a stream: each message re-serialized, then the error if any.
struct Outcome {
  std::vector<std::string> messages;
  std::string error;
};

Outcome Read(std::string_view stream, Rng* cuts) {
  tls::FrameReader reader(kMaxFrameBytes);
  Outcome out;
  while (!stream.empty() && out.error.empty()) {
    size_t n = cuts ? 1 + cuts->Uniform(std::min<size_t>(stream.size(), 300))
                    : std::min(stream.size(), tls::FrameReader::kMaxAppendBytes);
    reader.Append(stream.substr(0, n));
    stream.remove_prefix(n);
    // Each message consumes at least its 4-byte header.
    for (size_t i = 0; i <= n / 4 + 1; ++i) {
      Result<std::optional<wire::Envelope>> next = reader.Next();
      if (!next.ok()) {
        out.error = next.status().ToString();
        break;
      }
      if (!next->has_value()) break;
      out.messages.push_back((*next)->SerializeAsString());
    }
  }
  return out;
}

void CheckReserializes(const std::string& bytes) {
  wire::Envelope again;
  CHECK(again.ParseFromString(bytes)) << "re-serialized message does not parse";
  CHECK(again.SerializeAsString() == bytes) << "message changed through a round trip";
}

std::shared_ptr<const tls::Context> ServerContext() {
  static std::shared_ptr<const tls::Context> context = [] {
    testutil::TestPki pki("fuzz-ca");
    testutil::Issued id = pki.Issue("fuzz-server");
    Result<std::shared_ptr<const tls::Context>> ctx =
        tls::Context::FromPem({pki.ca_cert_pem(), id.cert_pem, id.key_pem});
    CHECK(ctx.ok()) << ctx.status().ToString();
    return *ctx;
  }();
  return context;
}

}  // namespace

int FuzzFrames(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  Outcome whole = Read(stream, nullptr);
  Rng cuts(data[0]);
  Outcome pieces = Read(stream, &cuts);
  CHECK(whole.messages == pieces.messages) << "cutting changed the messages";
  CHECK(whole.error == pieces.error) << whole.error << " vs " << pieces.error;
  for (const std::string& m : whole.messages) CheckReserializes(m);
  return 0;
}

int FuzzChannel(const uint8_t* data, size_t size) {
  tls::Channel server(*ServerContext(), tls::Channel::Role::kServer, kMaxFrameBytes);
  CHECK(server.Start().ok());
  std::string_view input(reinterpret_cast<const char*>(data), size);
  while (!input.empty()) {
    size_t n = std::min(input.size(), tls::Channel::kMaxCiphertextPerCall);
    Result<tls::Channel::Input> in = server.OnCiphertext(input.substr(0, n));
    input.remove_prefix(n);
    (void)server.TakeCiphertext();
    if (!in.ok()) break;
    CHECK(!in->opened) << "handshake completed without a client key";
  }
  CHECK(!server.open());
  return 0;
}

}  // namespace cairn::fuzz
