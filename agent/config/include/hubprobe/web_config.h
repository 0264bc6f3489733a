// SPDX-License-Identifier: Apache-2.0
// The web configuration file of [metrics] web_config_file: TLS and HTTP basic auth for /metrics, /status
// and /healthz, in the YAML format of the Prometheus exporters (exporter-toolkit's web-config.yml), a
// subset of it (docs/configuration.md lists the keys; any other key is an error).
//
// Loading reads the certificate, key and CA files and checks them with OpenSSL (the key matches the
// certificate, the CA file holds certificates), so a file that loads gives a server that starts. The
// contents are kept: the server never reads these files again, and a reload after a certificate was
// replaced (same paths, new contents) is a change. Error messages name the file, line, column and key,
// never a password hash or key material.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "hubprobe/result.h"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace hubprobe {

/// tls_server_config.client_auth_type, with Go's crypto/tls names.
enum class ClientAuth : uint8_t {
  kNoClientCert,                ///< no certificate asked for (the default)
  kRequestClientCert,           ///< asked for, not required, not verified
  kRequireAnyClientCert,        ///< required, not verified
  kVerifyClientCertIfGiven,     ///< not required; verified against client_ca_file when given
  kRequireAndVerifyClientCert,  ///< required and verified against client_ca_file
};
const char* to_string(ClientAuth auth);

/// tls_server_config.min_version / max_version: "TLS10" .. "TLS13".
enum class TlsVersion : uint8_t { kTls10, kTls11, kTls12, kTls13 };
const char* to_string(TlsVersion version);

struct WebTlsConfig {
  std::string cert_file;       ///< resolved (relative: to the web config file's folder)
  std::string key_file;        ///< resolved
  std::string client_ca_file;  ///< resolved; empty = none
  std::string cert_pem;        ///< the contents of cert_file (certificate, then its chain)
  std::string key_pem;         ///< the contents of key_file: secret, never logged or shown
  std::string client_ca_pem;   ///< the contents of client_ca_file
  ClientAuth client_auth = ClientAuth::kNoClientCert;
  TlsVersion min_version = TlsVersion::kTls12;
  TlsVersion max_version = TlsVersion::kTls13;
  bool operator==(const WebTlsConfig&) const = default;
};

struct WebConfig {
  std::string file;                 ///< the web configuration file as resolved; empty = none given
  std::optional<WebTlsConfig> tls;  ///< none: plain HTTP
  /// basic_auth_users: user name -> bcrypt hash ($2a$, $2b$ or $2y$). Empty: no authentication.
  std::map<std::string, std::string> basic_auth_users;
  bool operator==(const WebConfig&) const = default;
};

/// Reads and checks a web configuration file. Relative paths in it are taken from its folder. Errors:
/// "PATH:LINE:COLUMN: KEY.PATH: what is wrong" (or "PATH: cannot open: ..."), one line. Thread-safe.
Result<WebConfig> load_web_config(const std::string& path);
/// The same for text; `source_name` names it in messages and its folder resolves relative paths.
Result<WebConfig> parse_web_config(std::string_view text, const std::string& source_name);

/// A bcrypt hash as htpasswd -B and Go's bcrypt write it: "$2y$", "$2b$" or "$2a$", a cost 04..31, "$",
/// 53 characters of bcrypt's base64 (22 of salt, 31 of hash). 60 characters in all.
bool is_bcrypt_hash(std::string_view text);

/// Puts `tls` into a server SSL_CTX: certificate and chain, key, versions, client certificate policy and
/// CA. The error names the key of the web configuration file at fault ("tls_server_config.key_file: ...").
Result<void> configure_tls_context(ssl_ctx_st* context, const WebTlsConfig& tls);

}  // namespace hubprobe
