// Helpers shared by the three parts of the peer data channel (peer_data.cc: frames, TLS and
// TlsPipe; peer_data_server.cc; peer_data_client.cc). Not part of its interface (peer_data.h).
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace vios::agent::peer::detail {

using Clock = std::chrono::steady_clock;

// Payloads at least this large are sent from and received into their own buffers
// (TlsPipe::AppendRef / SetSink) instead of being copied.
inline constexpr uint32_t kDirectPayload = 16u << 10;
// A connection stops reading when this much output is waiting for the socket (backpressure).
inline constexpr size_t kMaxOutBuffered = 32u << 20;

// WakeFd / DrainFd: an eventfd as a level a thread sleeps on in poll.
void WakeFd(int fd);
void DrainFd(int fd);
// TuneSocket: TCP_NODELAY (frames are sent whole; small answers must not wait).
void TuneSocket(int fd);
// SplitHostPort accepts "host:port" and "[v6]:port".
bool SplitHostPort(const std::string& address, std::string* host, std::string* port);
// Remaining: milliseconds left until deadline, at least 0 (a poll timeout).
int Remaining(Clock::time_point deadline);
// Handshake drives the TLS handshake on a non-blocking socket until it completes or deadline.
bool Handshake(SSL* ssl, int fd, bool server, Clock::time_point deadline, std::string* error);
// PeerCommonName: the common name of the verified peer certificate ("" if none).
std::string PeerCommonName(SSL* ssl);

}  // namespace vios::agent::peer::detail
