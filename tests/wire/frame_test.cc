#include "wire/frame.h"

#include <gtest/gtest.h>

#include "wire/schema.h"

namespace cairn::wire {
namespace {

TEST(FrameTest, EncodedFrameDecodesComplete) {
  std::string buf;
  ASSERT_TRUE(EncodeFrame("hello", &buf).ok());
  DecodeResult r = DecodeFrame(buf);
  ASSERT_EQ(r.state, DecodeState::kComplete);
  EXPECT_EQ(r.payload, "hello");
  EXPECT_EQ(r.consumed, buf.size());
}

TEST(FrameTest, TruncatedFrameNeedsMore) {
  std::string buf;
  ASSERT_TRUE(EncodeFrame("hello", &buf).ok());
  for (size_t n = 0; n < buf.size(); ++n) {
    EXPECT_EQ(DecodeFrame(std::string_view(buf).substr(0, n)).state,
              DecodeState::kNeedMore)
        << n;
  }
}

TEST(FrameTest, OversizedLengthIsMalformedBeforeTheBodyArrives) {
  std::string buf("\x00\x10\x00\x01", 4);  // 1 MiB + 1
  DecodeResult r = DecodeFrame(buf, 1 << 20);
  EXPECT_EQ(r.state, DecodeState::kMalformed);
  EXPECT_NE(r.reason.find("exceeds the limit"), std::string::npos);
}

TEST(FrameTest, EncodeRefusesOversizedPayloadAndLeavesOutputAlone) {
  std::string buf = "x";
  EXPECT_FALSE(EncodeFrame(std::string(11, 'a'), &buf, 10).ok());
  EXPECT_EQ(buf, "x");
}

TEST(FrameTest, TwoFramesBackToBackDecodeInOrder) {
  std::string buf;
  ASSERT_TRUE(EncodeFrame("one", &buf).ok());
  ASSERT_TRUE(EncodeFrame("", &buf).ok());
  DecodeResult a = DecodeFrame(buf);
  ASSERT_EQ(a.state, DecodeState::kComplete);
  EXPECT_EQ(a.payload, "one");
  DecodeResult b = DecodeFrame(std::string_view(buf).substr(a.consumed));
  ASSERT_EQ(b.state, DecodeState::kComplete);
  EXPECT_EQ(b.payload, "");
}

TEST(SchemaTest, EnvelopeRoundTrips) {
  Envelope e;
  e.mutable_hello()->set_node_id("n1");
  e.mutable_hello()->set_protocol_version(1);
  Envelope back;
  ASSERT_TRUE(back.ParseFromString(e.SerializeAsString()));
  EXPECT_EQ(back.msg_case(), Envelope::kHello);
  EXPECT_EQ(back.hello().node_id(), "n1");
}

}  // namespace
}  // namespace cairn::wire
