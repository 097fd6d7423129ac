#include "tls/channel.h"

#include <openssl/buffer.h>
#include <openssl/err.h>

#include "base/bytes.h"
#include "base/check.h"

namespace cairn::tls {
namespace {

constexpr size_t kMaxRecordPlaintext = 16 << 10;
constexpr size_t kMaxFrameLimit = 64 << 20;
constexpr size_t kKeepWriteBufferBytes = 256 << 10;

}  // namespace

Channel::Channel(const Context& context, Role role, size_t max_frame_bytes,
                 size_t first_frame_bytes)
    : max_frame_bytes_(max_frame_bytes),
      role_(role),
      ssl_(SSL_new(context.native())),
      reader_(max_frame_bytes, first_frame_bytes) {
  CHECK(max_frame_bytes > 0 && max_frame_bytes <= kMaxFrameLimit) << max_frame_bytes;
  CHECK(ssl_ != nullptr) << OpenSslErrors();
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  CHECK(rbio_ != nullptr && wbio_ != nullptr);
  // An empty memory BIO means "retry later", never end of stream.
  BIO_set_mem_eof_return(rbio_, -1);
  BIO_set_mem_eof_return(wbio_, -1);
  SSL_set_bio(ssl_.get(), rbio_, wbio_);  // ssl_ owns both from here
  if (role == Role::kClient) {
    SSL_set_connect_state(ssl_.get());
  } else {
    SSL_set_accept_state(ssl_.get());
  }
}

Channel::~Channel() = default;

Status Channel::Start() {
  CHECK(!started_);
  started_ = true;
  if (role_ == Role::kServer) return Status::Ok();
  Input ignored;
  return AdvanceHandshake(&ignored);
}

Result<Channel::Input> Channel::OnCiphertext(std::string_view bytes) {
  CHECK(started_);
  CHECK(bytes.size() <= kMaxCiphertextPerCall) << bytes.size();
  Input input;
  if (peer_closed_ || bytes.empty()) return input;
  CHECK(BIO_write(rbio_, bytes.data(), static_cast<int>(bytes.size())) ==
        static_cast<int>(bytes.size()));
  if (!open_) {
    CAIRN_RETURN_IF_ERROR(AdvanceHandshake(&input));
    if (!open_) return input;
  }
  CAIRN_RETURN_IF_ERROR(ReadRecords(&input));
  return input;
}

Status Channel::AdvanceHandshake(Input* input) {
  ERR_clear_error();
  int rc = SSL_do_handshake(ssl_.get());
  if (rc != 1) {
    int err = SSL_get_error(ssl_.get(), rc);
    if (err == SSL_ERROR_WANT_READ) return Status::Ok();
    return Status::Unavailable(FailureReason(err, "TLS handshake failed"));
  }
  X509* peer = SSL_get0_peer_certificate(ssl_.get());
  // VERIFY_PEER | FAIL_IF_NO_PEER_CERT make both hold; checked, never assumed.
  CHECK(peer != nullptr && SSL_get_verify_result(ssl_.get()) == X509_V_OK);
  Result<std::string> id = CertificateId(peer);
  if (!id.ok()) return id.status().WithContext("TLS handshake failed: peer");
  peer_id_ = std::move(id).value();
  open_ = true;
  input->opened = true;
  return Status::Ok();
}

Status Channel::ReadRecords(Input* input) {
  char plain[kMaxRecordPlaintext];
  // Every record holds at least one byte of input, so this bound is never reached by
  // a well-behaved SSL object; it keeps the loop visibly finite.
  size_t max_reads = kMaxCiphertextPerCall + 16;
  for (size_t i = 0; i < max_reads; ++i) {
    ERR_clear_error();
    int n = SSL_read(ssl_.get(), plain, sizeof(plain));
    if (n > 0) {
      reader_.Append(std::string_view(plain, static_cast<size_t>(n)));
      CAIRN_RETURN_IF_ERROR(DrainFrames(input));
      continue;
    }
    int err = SSL_get_error(ssl_.get(), n);
    if (err == SSL_ERROR_WANT_READ) return Status::Ok();
    if (err == SSL_ERROR_ZERO_RETURN) {
      peer_closed_ = true;
      input->peer_closed = true;
      return Status::Ok();
    }
    return Status::Unavailable(FailureReason(err, "TLS read failed"));
  }
  CHECK(false) << "SSL_read loop did not end";
  return Status::Ok();
}

Status Channel::DrainFrames(Input* input) {
  // Each message consumes at least its 4-byte header of the appended bytes.
  for (size_t i = 0; i <= FrameReader::kMaxAppendBytes; ++i) {
    Result<std::optional<wire::Envelope>> next = reader_.Next();
    if (!next.ok()) return next.status();
    if (!next->has_value()) return Status::Ok();
    input->messages.push_back(std::move(**next));
  }
  CHECK(false) << "frame loop did not end";
  return Status::Ok();
}

Status Channel::Send(const wire::Envelope& message) {
  size_t size = message.ByteSizeLong();
  if (size > max_frame_bytes_) {
    return Status::ResourceExhausted("message of " + std::to_string(size) +
                                     " bytes exceeds the frame limit of " +
                                     std::to_string(max_frame_bytes_));
  }
  return SendSerialized(message.SerializeAsString());
}

Status Channel::SendSerialized(std::string_view message) {
  if (!open_ || shut_down_) {
    return Status::FailedPrecondition(open_ ? "connection is closing"
                                            : "TLS handshake not complete");
  }
  std::string frame;
  CAIRN_RETURN_IF_ERROR(wire::EncodeFrame(message, &frame, max_frame_bytes_));
  ERR_clear_error();
  // A memory BIO never refuses bytes, so SSL_write takes the whole frame or fails.
  int n = SSL_write(ssl_.get(), frame.data(), static_cast<int>(frame.size()));
  if (n != static_cast<int>(frame.size())) {
    return Status::Unavailable(
        FailureReason(SSL_get_error(ssl_.get(), n), "TLS write failed"));
  }
  return Status::Ok();
}

void Channel::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (!open_) return;  // nothing to close politely before the handshake
  ERR_clear_error();
  SSL_shutdown(ssl_.get());  // queues close_notify; the reply, if any, is not awaited
  ERR_clear_error();
}

std::string Channel::TakeCiphertext() {
  std::string out(ciphertext_pending(), '\0');
  if (out.empty()) return out;
  int n = BIO_read(wbio_, out.data(), static_cast<int>(out.size()));
  CHECK(n == static_cast<int>(out.size()));
  // A memory BIO keeps the buffer its peak needed: after a burst (a peer that
  // stopped reading), a fresh one gives that memory back.
  BUF_MEM* buf = nullptr;
  BIO_get_mem_ptr(wbio_, &buf);
  if (buf != nullptr && buf->max > kKeepWriteBufferBytes) {
    BIO* fresh = BIO_new(BIO_s_mem());
    CHECK(fresh != nullptr);
    SSL_set0_wbio(ssl_.get(), fresh);  // frees the old one
    wbio_ = fresh;
  }
  return out;
}

size_t Channel::ciphertext_pending() const { return BIO_ctrl_pending(wbio_); }

std::string Channel::FailureReason(int ssl_error, const char* what) {
  std::string reason = what;
  long verify = SSL_get_verify_result(ssl_.get());
  if (verify != X509_V_OK) {
    reason += ": peer certificate rejected (";
    reason += X509_verify_cert_error_string(verify);
    reason += ")";
    ERR_clear_error();
    return reason;
  }
  if (ssl_error == SSL_ERROR_SSL) return reason + ": " + OpenSslErrors();
  ERR_clear_error();
  return reason + ": SSL error " + std::to_string(ssl_error);
}

}  // namespace cairn::tls
