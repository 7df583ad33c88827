// Transport implementation over cpp-httplib (compiled Debian library, OpenSSL).
//
// Certificate verification is done by OpenSSL itself (SSL_VERIFY_PEER on the context, a store
// holding only the configured CA, the expected host or IP in the verify parameters) instead of
// httplib's own check, because httplib would add the system CA paths to our store.
#include "common/kube/transport.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "common/kube/errors.h"
#include "common/util/sigpipe.h"

namespace vios::kube {
namespace {

using SteadyClock = std::chrono::steady_clock;

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::vector<X509Ptr> ParseCertificates(const std::string& pem, const std::string& what) {
  std::vector<X509Ptr> certs;
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(cert);
  }
  ERR_clear_error();  // the loop always ends with a "no start line" error
  if (certs.empty()) throw ConfigError(what + ": no PEM certificate found");
  return certs;
}

PkeyPtr ParseKey(const std::string& pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (!key) throw ConfigError("client key: not a PEM private key");
  return key;
}

bool IsIpLiteral(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string OpenSslErrors() {
  std::string text;
  while (unsigned long err = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    if (!text.empty()) text += "; ";
    text += buf;
  }
  return text;
}

}  // namespace

void StreamCancel::Cancel() {
  // The interrupt runs under mu_ so that Detach (which takes mu_) cannot return, and the stream's
  // client be destroyed, while it is still being shut down.
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  if (interrupt_) interrupt_();
}

bool StreamCancel::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

void StreamCancel::Attach(std::function<void()> interrupt) {
  std::lock_guard<std::mutex> lock(mu_);
  interrupt_ = std::move(interrupt);
}

void StreamCancel::Detach() {
  std::lock_guard<std::mutex> lock(mu_);
  interrupt_ = nullptr;
}

struct Transport::Impl {
  Config config;
  bool tls = false;
  std::string host;
  int port = 0;
  std::string base_path;  // path prefix of the server URL, usually empty
  std::vector<X509Ptr> ca;
  X509Ptr client_cert;
  PkeyPtr client_key;

  std::mutex mu;  // guards idle and the token cache
  struct Idle {
    std::unique_ptr<httplib::ClientImpl> client;
    SteadyClock::time_point since;
  };
  std::vector<Idle> idle;
  std::string cached_token;
  SteadyClock::time_point token_read_at;

  void ParseServer() {
    std::string s = config.server;
    if (s.rfind("https://", 0) == 0) {
      tls = true;
      s = s.substr(8);
    } else if (s.rfind("http://", 0) == 0) {
      s = s.substr(7);
    } else {
      throw ConfigError("server '" + config.server + "': must start with https:// or http://");
    }
    if (size_t slash = s.find('/'); slash != std::string::npos) {
      base_path = s.substr(slash);
      s = s.substr(0, slash);
      while (!base_path.empty() && base_path.back() == '/') base_path.pop_back();
    }
    port = tls ? 443 : 80;
    if (!s.empty() && s[0] == '[') {  // [v6]:port
      size_t close = s.find(']');
      if (close == std::string::npos) throw ConfigError("server '" + config.server + "': bad IPv6");
      host = s.substr(1, close - 1);
      s = s.substr(close + 1);
      if (!s.empty() && s[0] == ':') port = std::atoi(s.c_str() + 1);
    } else if (size_t colon = s.rfind(':'); colon != std::string::npos) {
      host = s.substr(0, colon);
      port = std::atoi(s.c_str() + colon + 1);
    } else {
      host = s;
    }
    if (host.empty() || port <= 0 || port > 65535) {
      throw ConfigError("server '" + config.server + "': no valid host:port");
    }
  }

  std::unique_ptr<httplib::ClientImpl> NewClient() {
    std::unique_ptr<httplib::ClientImpl> client;
    if (!tls) {
      client = std::make_unique<httplib::ClientImpl>(host, port);
    } else {
      auto ssl =
          std::make_unique<httplib::SSLClient>(host, port, client_cert.get(), client_key.get());
      if (!ssl->is_valid()) {
        throw ConfigError("client certificate and key rejected by OpenSSL: " + OpenSslErrors());
      }
      ssl->enable_server_certificate_verification(false);  // OpenSSL verifies, see file header
      SSL_CTX* ctx = ssl->ssl_context();
      if (config.insecure_skip_tls_verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
      } else {
        if (ca.empty()) {
          SSL_CTX_set_default_verify_paths(ctx);
        } else {
          X509_STORE* store = X509_STORE_new();
          for (const X509Ptr& cert : ca) X509_STORE_add_cert(store, cert.get());
          SSL_CTX_set_cert_store(ctx, store);  // the context owns the store now
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
        X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx);
        const std::string& name = config.tls_server_name.empty() ? host : config.tls_server_name;
        if (IsIpLiteral(name)) {
          X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
        } else {
          X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
        }
      }
      client = std::move(ssl);
    }
    auto connect = std::chrono::duration_cast<std::chrono::microseconds>(config.connect_timeout);
    client->set_connection_timeout(connect);
    client->set_url_encode(false);  // Client percent-encodes paths and queries itself
    // Requests are small and written in pieces (headers, then body): without TCP_NODELAY, Nagle
    // holds the body until the server's delayed ACK, ~40 ms per write request on loopback.
    client->set_tcp_nodelay(true);
    return client;
  }

  // Acquire takes an idle keep-alive connection or makes a new one. Connections idle for more
  // than a few seconds are dropped: the server may have closed them, and a request failing on a
  // stale connection cannot be told apart from one the server received.
  std::unique_ptr<httplib::ClientImpl> Acquire() {
    std::lock_guard<std::mutex> lock(mu);
    while (!idle.empty()) {
      Idle entry = std::move(idle.back());
      idle.pop_back();
      if (SteadyClock::now() - entry.since < std::chrono::seconds(2)) {
        return std::move(entry.client);
      }
    }
    return nullptr;
  }

  void Release(std::unique_ptr<httplib::ClientImpl> client) {
    std::lock_guard<std::mutex> lock(mu);
    if (idle.size() < 8) idle.push_back({std::move(client), SteadyClock::now()});
  }

  httplib::Headers Headers() {
    httplib::Headers headers{{"Accept", "application/json"}, {"User-Agent", "vios/0.1"}};
    std::string token = config.token;
    if (!config.token_file.empty()) {
      std::lock_guard<std::mutex> lock(mu);
      // Projected service-account tokens rotate; re-read the file once a minute.
      if (cached_token.empty() || SteadyClock::now() - token_read_at > std::chrono::minutes(1)) {
        std::ifstream in(config.token_file);
        std::ostringstream text;
        text << in.rdbuf();
        std::string t = text.str();
        while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
        if (!t.empty()) cached_token = t;
        token_read_at = SteadyClock::now();
      }
      token = cached_token;
    }
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    return headers;
  }

  [[noreturn]] void ThrowTransport(const std::string& verb, const std::string& path,
                                   httplib::Error err) {
    std::string message = httplib::to_string(err);
    ErrorKind kind = ErrorKind::kUnreachable;
    switch (err) {
      case httplib::Error::SSLConnection:
      case httplib::Error::SSLLoadingCerts:
      case httplib::Error::SSLServerVerification: {
        kind = ErrorKind::kTls;
        std::string detail = OpenSslErrors();
        message = "TLS handshake with " + config.server + " failed" +
                  (detail.empty() ? "" : ": " + detail) +
                  " (check the CA, the client certificate and the server name)";
        break;
      }
      case httplib::Error::Connection:
        message = std::string(kNotSentMarker) + ": cannot connect to " + config.server;
        break;
      default:
        message += " (server " + config.server + ")";
        break;
    }
    throw ApiError(kind, verb, path, 0, "", message);
  }
};

Transport::Transport(const Config& config) : impl_(std::make_unique<Impl>()) {
  // Writing to a connection the server closed (or that Stop() shut down) must not kill us.
  util::IgnoreSigpipe();
  impl_->config = config;
  impl_->ParseServer();
  if (!config.ca_pem.empty()) impl_->ca = ParseCertificates(config.ca_pem, "CA certificate");
  if (!config.client_cert_pem.empty()) {
    auto certs = ParseCertificates(config.client_cert_pem, "client certificate");
    impl_->client_cert = std::move(certs.front());
    impl_->client_key = ParseKey(config.client_key_pem);
  }
  impl_->Release(impl_->NewClient());  // surface certificate problems at construction
}

Transport::~Transport() = default;

const Config& Transport::config() const { return impl_->config; }

HttpResponse Transport::Do(const HttpRequest& req) {
  std::unique_ptr<httplib::ClientImpl> client = impl_->Acquire();
  if (!client) client = impl_->NewClient();
  client->set_keep_alive(true);
  auto timeout =
      std::chrono::duration_cast<std::chrono::microseconds>(impl_->config.request_timeout);
  client->set_read_timeout(timeout);
  client->set_write_timeout(timeout);

  httplib::Request request;
  request.method = req.method;
  request.path = impl_->base_path + req.path;
  request.headers = impl_->Headers();
  if (!req.body.empty() || req.method == "POST" || req.method == "PUT" || req.method == "PATCH") {
    request.body = req.body;
    request.set_header("Content-Type", req.content_type);
  }
  httplib::Result result = client->send(request);
  if (!result) {
    impl_->ThrowTransport(req.method, req.path, result.error());  // client is dropped
  }
  HttpResponse response{result->status, std::move(result->body),
                        result->get_header_value("Retry-After")};
  impl_->Release(std::move(client));
  return response;
}

HttpResponse Transport::Stream(const std::string& path, std::chrono::seconds read_timeout,
                               const std::function<bool(std::string_view)>& on_chunk,
                               StreamCancel* cancel) {
  std::unique_ptr<httplib::ClientImpl> client = impl_->NewClient();
  client->set_keep_alive(false);
  client->set_read_timeout(read_timeout);
  httplib::ClientImpl* raw = client.get();
  if (cancel != nullptr) cancel->Attach([raw] { raw->stop(); });

  HttpResponse response;
  bool ok_status = false;
  constexpr size_t kMaxErrorBody = 1 << 20;
  httplib::Result result = client->Get(
      impl_->base_path + path, impl_->Headers(),
      [&](const httplib::Response& r) {
        response.status = r.status;
        response.retry_after = r.get_header_value("Retry-After");
        ok_status = r.status >= 200 && r.status < 300;
        return cancel == nullptr || !cancel->cancelled();
      },
      [&](const char* data, size_t len) {
        if (cancel != nullptr && cancel->cancelled()) return false;
        if (!ok_status) {
          if (response.body.size() < kMaxErrorBody) response.body.append(data, len);
          return true;
        }
        return on_chunk(std::string_view(data, len));
      });
  if (cancel != nullptr) cancel->Detach();
  bool cancelled = cancel != nullptr && cancel->cancelled();
  if (!result && !cancelled && result.error() != httplib::Error::Canceled) {
    impl_->ThrowTransport("WATCH", path, result.error());
  }
  return response;
}

}  // namespace vios::kube
