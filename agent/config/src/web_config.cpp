// SPDX-License-Identifier: Apache-2.0
// The web configuration file (hubprobe/web_config.h): yaml-cpp reads the YAML, OpenSSL checks the
// certificate, key and CA it names.
#include "hubprobe/web_config.h"

#include "file_text.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>
// GCC 12 warns of a dangling pointer inside yaml-cpp 0.7's node/impl.h (Node::operator= of a temporary; a
// false positive under -Werror): silenced for its headers only.
#pragma GCC diagnostic push
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif
#include <yaml-cpp/yaml.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>
#include <span>
#include <vector>

#include "toml_report.h"

namespace hubprobe {
namespace {

using config_detail::escape_controls;
using config_detail::quote;

// A web configuration file, a certificate or key: far below this.
constexpr size_t kMaxFileOctets = 1u << 20;

// Thrown inside the parser only; parse_web_config turns it into the Error it returns.
struct WebConfigError {
  YAML::Mark mark;  // mark.line < 0: no position
  std::string key_path;
  std::string message;
};

[[noreturn]] void fail(const YAML::Node& node, const std::string& key_path, std::string message) {
  throw WebConfigError{node.Mark(), key_path, std::move(message)};
}

std::string format(const std::string& source, const YAML::Mark& mark, const std::string& key_path,
                   const std::string& message) {
  std::string text = source + ":";
  if (mark.line >= 0) text += std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1) + ":";
  text += " ";
  if (!key_path.empty()) text += key_path + ": ";
  return escape_controls(text + message);
}

// What the file holds at a node, for "got ...": the kind only for maps and sequences.
std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Scalar: return quote(node.Scalar());
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Undefined: break;
  }
  return "nothing";
}

Result<std::string> read_file(const std::string& path) { return read_text_file(path, kMaxFileOctets); }

// The keys of a mapping, checked: each known and written once. Keys exporter-toolkit has but this
// subset does not are refused as such, so an operator knows the key is not a typo.
void check_keys(const YAML::Node& map, const std::string& path, std::span<const std::string_view> known,
                std::span<const std::string_view> unsupported) {
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node key = it->first;  // a copy: it-> is a proxy that lives only for this expression
    if (!key.IsScalar()) fail(key, path, "expected a key name, got " + describe(key));
    const std::string name = key.Scalar();
    const std::string key_path = path.empty() ? name : path + "." + name;
    if (!seen.insert(name).second) fail(key, key_path, "written twice");
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    if (std::find(unsupported.begin(), unsupported.end(), name) != unsupported.end()) {
      fail(key, key_path, "not supported by hubprobe (docs/configuration.md lists the keys it reads)");
    }
    std::string expected;
    for (const std::string_view k : known) expected += (expected.empty() ? "" : ", ") + std::string(k);
    fail(key, key_path, "unknown key (expected one of: " + expected + ")");
  }
}

// A mapping or nothing (null: the key written without a value, as YAML allows).
bool optional_map(const YAML::Node& node, const std::string& path, std::string_view what) {
  if (node.IsNull()) return false;
  if (!node.IsMap()) fail(node, path, "expected " + std::string(what) + ", got " + describe(node));
  return true;
}

std::string read_string(const YAML::Node& node, const std::string& path, std::string_view what) {
  if (!node.IsScalar() || node.Scalar().empty()) {
    fail(node, path, "expected " + std::string(what) + ", got " + describe(node));
  }
  return node.Scalar();
}

struct FileRead {
  std::string path;
  std::string content;
};

FileRead read_named_file(const YAML::Node& node, const std::string& key_path, const std::filesystem::path& base,
                         std::string_view what) {
  const std::string text = read_string(node, key_path, what);
  std::filesystem::path file(text);
  if (file.is_relative() && !base.empty()) file = base / file;
  auto content = read_file(file.string());
  if (!content) {
    fail(node, key_path,
         "expected " + std::string(what) + ", got " + quote(text) + " ('" + file.string() +
             "': " + content.error().message + ")");
  }
  return FileRead{file.string(), std::move(*content)};
}

template <class Enum, size_t N>
Enum read_choice(const YAML::Node& node, const std::string& path, const std::array<std::string_view, N>& names) {
  std::string list;
  for (const std::string_view name : names) list += (list.empty() ? "" : ", ") + std::string(name);
  if (node.IsScalar()) {
    for (size_t i = 0; i < N; ++i) {
      if (node.Scalar() == names[i]) return static_cast<Enum>(i);
    }
  }
  fail(node, path, "expected one of " + list + ", got " + describe(node));
}

constexpr std::array<std::string_view, 5> kClientAuthNames = {"NoClientCert", "RequestClientCert",
                                                              "RequireAnyClientCert", "VerifyClientCertIfGiven",
                                                              "RequireAndVerifyClientCert"};
constexpr std::array<std::string_view, 4> kVersionNames = {"TLS10", "TLS11", "TLS12", "TLS13"};

// Which key of tls_server_config a problem of configure_tls_context belongs to.
struct TlsProblem {
  std::string key;  // "cert_file", "key_file", "client_ca_file", "min_version"
  std::string message;
};

std::string openssl_reason() {
  std::string reason;
  while (const unsigned long code = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(code, text, sizeof(text));
    reason = text;  // the last one: the innermost is first, the last says what failed
  }
  return reason.empty() ? "" : " (" + reason + ")";
}

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using Bio = std::unique_ptr<BIO, BioDeleter>;
Bio memory_bio(const std::string& text) { return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size()))); }

// An encrypted key would make OpenSSL ask on the terminal: no passphrase, so it fails instead.
int no_passphrase(char*, int, int, void*) { return 0; }
int accept_any_certificate(int, X509_STORE_CTX*) { return 1; }

int protocol_version(TlsVersion version) {
  switch (version) {
    case TlsVersion::kTls10: return TLS1_VERSION;
    case TlsVersion::kTls11: return TLS1_1_VERSION;
    case TlsVersion::kTls12: return TLS1_2_VERSION;
    case TlsVersion::kTls13: return TLS1_3_VERSION;
  }
  return TLS1_2_VERSION;
}

std::optional<TlsProblem> configure(SSL_CTX* context, const WebTlsConfig& tls) {
  ERR_clear_error();
  {
    Bio bio = memory_bio(tls.cert_pem);
    X509* leaf = PEM_read_bio_X509_AUX(bio.get(), nullptr, nullptr, nullptr);
    if (leaf == nullptr) {
      return TlsProblem{"cert_file",
                        "expected a PEM certificate, '" + tls.cert_file + "' holds none" + openssl_reason()};
    }
    const int used = SSL_CTX_use_certificate(context, leaf);
    X509_free(leaf);
    if (used != 1) return TlsProblem{"cert_file", "OpenSSL refuses the certificate" + openssl_reason()};
    SSL_CTX_clear_chain_certs(context);
    while (X509* extra = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      if (SSL_CTX_add0_chain_cert(context, extra) != 1) {
        X509_free(extra);
        return TlsProblem{"cert_file", "OpenSSL refuses a chain certificate" + openssl_reason()};
      }
    }
    ERR_clear_error();  // the end of the PEM text ("no start line")
  }
  {
    Bio bio = memory_bio(tls.key_pem);
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, &no_passphrase, nullptr);
    if (key == nullptr) {
      ERR_clear_error();  // nothing of the key goes in a message
      return TlsProblem{"key_file", "expected an unencrypted PEM private key, '" + tls.key_file + "' holds none"};
    }
    const int used = SSL_CTX_use_PrivateKey(context, key);
    EVP_PKEY_free(key);
    if (used != 1 || SSL_CTX_check_private_key(context) != 1) {
      ERR_clear_error();
      return TlsProblem{"key_file", "the key in '" + tls.key_file + "' does not belong to the certificate in '" +
                                        tls.cert_file + "'"};
    }
  }
  SSL_CTX_clear_options(context,
                        SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 | SSL_OP_NO_TLSv1_2 | SSL_OP_NO_TLSv1_3);
  if (SSL_CTX_set_min_proto_version(context, protocol_version(tls.min_version)) != 1 ||
      SSL_CTX_set_max_proto_version(context, protocol_version(tls.max_version)) != 1) {
    return TlsProblem{"min_version", "OpenSSL refuses the versions" + openssl_reason()};
  }
  if (!tls.client_ca_pem.empty()) {
    Bio bio = memory_bio(tls.client_ca_pem);
    X509_STORE* store = SSL_CTX_get_cert_store(context);
    STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
    int count = 0;
    while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      ++count;
      if (X509_STORE_add_cert(store, ca) != 1) ERR_clear_error();  // the same CA twice: harmless
      if (X509_NAME* name = X509_NAME_dup(X509_get_subject_name(ca))) sk_X509_NAME_push(names, name);
      X509_free(ca);
    }
    ERR_clear_error();
    if (count == 0) {
      sk_X509_NAME_pop_free(names, X509_NAME_free);
      return TlsProblem{"client_ca_file", "expected PEM CA certificates, '" + tls.client_ca_file + "' holds none"};
    }
    SSL_CTX_set_client_CA_list(context, names);  // takes the list
  }
  switch (tls.client_auth) {
    case ClientAuth::kNoClientCert: SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nullptr); break;
    case ClientAuth::kRequestClientCert: SSL_CTX_set_verify(context, SSL_VERIFY_PEER, &accept_any_certificate); break;
    case ClientAuth::kRequireAnyClientCert:
      SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, &accept_any_certificate);
      break;
    case ClientAuth::kVerifyClientCertIfGiven: SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nullptr); break;
    case ClientAuth::kRequireAndVerifyClientCert:
      SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
      break;
  }
  // Resumed sessions with client certificates need a session id context, or OpenSSL refuses them.
  static constexpr unsigned char kSessionContext[] = "hubprobe";
  SSL_CTX_set_session_id_context(context, kSessionContext, sizeof(kSessionContext) - 1);
  return std::nullopt;
}

WebTlsConfig read_tls(const YAML::Node& table, const std::filesystem::path& base, bool& any) {
  static constexpr std::string_view kKnown[] = {"cert_file",      "key_file",    "client_auth_type",
                                                "client_ca_file", "min_version", "max_version"};
  static constexpr std::string_view kUnsupported[] = {"cert",
                                                      "key",
                                                      "client_ca",
                                                      "cipher_suites",
                                                      "curve_preferences",
                                                      "prefer_server_cipher_suites",
                                                      "client_allowed_sans"};
  const std::string path = "tls_server_config";
  check_keys(table, path, kKnown, kUnsupported);
  WebTlsConfig tls;
  any = table.size() > 0;
  if (!any) return tls;
  const YAML::Node cert = table["cert_file"];
  const YAML::Node key = table["key_file"];
  if (!cert) fail(table, path + ".cert_file", "required key is missing (the server's certificate, PEM)");
  if (!key) fail(table, path + ".key_file", "required key is missing (the server's private key, PEM)");
  FileRead cert_read = read_named_file(cert, path + ".cert_file", base, "a readable certificate file (PEM)");
  FileRead key_read = read_named_file(key, path + ".key_file", base, "a readable private key file (PEM)");
  tls.cert_file = std::move(cert_read.path);
  tls.cert_pem = std::move(cert_read.content);
  tls.key_file = std::move(key_read.path);
  tls.key_pem = std::move(key_read.content);
  if (const YAML::Node node = table["client_auth_type"]) {
    tls.client_auth = read_choice<ClientAuth>(node, path + ".client_auth_type", kClientAuthNames);
  }
  if (const YAML::Node node = table["client_ca_file"]) {
    FileRead ca = read_named_file(node, path + ".client_ca_file", base, "a readable CA certificate file (PEM)");
    tls.client_ca_file = std::move(ca.path);
    tls.client_ca_pem = std::move(ca.content);
    // As exporter-toolkit: a CA without a policy that uses it is a mistake, not a silent no-op.
    if (tls.client_auth == ClientAuth::kNoClientCert || tls.client_auth == ClientAuth::kRequestClientCert ||
        tls.client_auth == ClientAuth::kRequireAnyClientCert) {
      fail(node, path + ".client_ca_file",
           std::string("is not used with client_auth_type ") + to_string(tls.client_auth) +
               " (set VerifyClientCertIfGiven or RequireAndVerifyClientCert, or remove it)");
    }
  }
  if ((tls.client_auth == ClientAuth::kVerifyClientCertIfGiven ||
       tls.client_auth == ClientAuth::kRequireAndVerifyClientCert) &&
      tls.client_ca_file.empty()) {
    fail(table["client_auth_type"], path + ".client_ca_file",
         std::string("required key is missing (client_auth_type ") + to_string(tls.client_auth) +
             " verifies client certificates against the CAs in it)");
  }
  if (const YAML::Node node = table["min_version"]) {
    tls.min_version = read_choice<TlsVersion>(node, path + ".min_version", kVersionNames);
  }
  if (const YAML::Node node = table["max_version"]) {
    tls.max_version = read_choice<TlsVersion>(node, path + ".max_version", kVersionNames);
  }
  if (tls.max_version < tls.min_version) {
    fail(table["max_version"] ? table["max_version"] : table["min_version"], path + ".max_version",
         std::string("expected a version no older than min_version ") + to_string(tls.min_version) + ", got " +
             to_string(tls.max_version));
  }
  // The certificate, key and CA as OpenSSL reads them, in a context thrown away: the server's own is
  // configured by the same function when it starts, so it cannot fail there.
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> context(SSL_CTX_new(TLS_server_method()), &SSL_CTX_free);
  if (!context) fail(table, path, "cannot create an OpenSSL context" + openssl_reason());
  if (auto problem = configure(context.get(), tls)) {
    const YAML::Node at = table[problem->key];
    fail(at ? at : table, path + "." + problem->key, problem->message);
  }
  return tls;
}

void read_users(const YAML::Node& table, WebConfig& config) {
  const std::string path = "basic_auth_users";
  std::set<std::string> seen;
  for (auto it = table.begin(); it != table.end(); ++it) {
    const YAML::Node name = it->first;  // copies: it-> is a proxy that lives only for one expression
    const YAML::Node hash = it->second;
    if (!name.IsScalar() || name.Scalar().empty()) fail(name, path, "expected a user name, got " + describe(name));
    const std::string user = name.Scalar();
    const std::string key_path = path + "." + user;
    if (user.find(':') != std::string::npos || std::any_of(user.begin(), user.end(), [](char c) {
          return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
        })) {
      fail(name, key_path, "expected a user name without ':' or control characters (HTTP basic auth)");
    }
    if (!seen.insert(user).second) fail(name, key_path, "written twice");
    // The value is never shown: a hash is a secret too.
    if (!hash.IsScalar() || !is_bcrypt_hash(hash.Scalar())) {
      // A key without a value: yaml-cpp places the null where the next line starts, the key is clearer.
      throw WebConfigError{hash.IsNull() ? name.Mark() : hash.Mark(), key_path,
                           "expected a bcrypt hash (\"$2y$\", \"$2b$\" or \"$2a$\", a cost 04..31, 60 characters, as "
                           "htpasswd -B writes it); the value is not shown"};
    }
    config.basic_auth_users[user] = hash.Scalar();
  }
}

}  // namespace

const char* to_string(ClientAuth auth) { return kClientAuthNames[static_cast<size_t>(auth)].data(); }
const char* to_string(TlsVersion version) { return kVersionNames[static_cast<size_t>(version)].data(); }

bool is_bcrypt_hash(std::string_view text) {
  if (text.size() != 60 || text.substr(0, 2) != "$2" || text[3] != '$' || text[6] != '$') return false;
  if (text[2] != 'a' && text[2] != 'b' && text[2] != 'y') return false;
  if (text[4] < '0' || text[4] > '9' || text[5] < '0' || text[5] > '9') return false;
  const int cost = (text[4] - '0') * 10 + (text[5] - '0');
  if (cost < 4 || cost > 31) return false;
  return std::all_of(text.begin() + 7, text.end(), [](char c) {
    return c == '.' || c == '/' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  });
}

Result<void> configure_tls_context(ssl_ctx_st* context, const WebTlsConfig& tls) {
  if (auto problem = configure(context, tls)) {
    return make_error("tls_server_config." + problem->key + ": " + problem->message, EINVAL);
  }
  return {};
}

Result<WebConfig> parse_web_config(std::string_view text, const std::string& source_name) {
  try {
    YAML::Node loaded;
    try {
      loaded = YAML::Load(std::string(text));
    } catch (const YAML::ParserException& error) {
      return make_error(format(source_name, error.mark, "", "not YAML: " + error.msg), EINVAL);
    }
    // Looked up through a const node only: operator[] of a non-const one adds what it does not find.
    const YAML::Node& root = loaded;
    WebConfig config;
    config.file = source_name;
    if (root.IsNull()) return config;  // an empty file: plain HTTP, no authentication
    if (!root.IsMap())
      fail(root, "", "expected a mapping of tls_server_config and basic_auth_users, got " + describe(root));
    static constexpr std::string_view kKnown[] = {"tls_server_config", "basic_auth_users"};
    static constexpr std::string_view kUnsupported[] = {"http_server_config", "rate_limit"};
    check_keys(root, "", kKnown, kUnsupported);
    const std::filesystem::path base = std::filesystem::path(source_name).parent_path();
    if (const YAML::Node tls = root["tls_server_config"]) {
      if (optional_map(tls, "tls_server_config", "a mapping of cert_file, key_file, ...")) {
        bool any = false;
        WebTlsConfig read = read_tls(tls, base, any);
        if (any) config.tls = std::move(read);
      }
    }
    if (const YAML::Node users = root["basic_auth_users"]) {
      if (optional_map(users, "basic_auth_users", "a mapping of user names to bcrypt hashes"))
        read_users(users, config);
    }
    return config;
  } catch (const WebConfigError& error) {
    return make_error(format(source_name, error.mark, error.key_path, error.message), EINVAL);
  } catch (const YAML::Exception& error) {
    return make_error(format(source_name, error.mark, "", "cannot read the YAML: " + error.msg), EINVAL);
  }
}

Result<WebConfig> load_web_config(const std::string& path) {
  auto text = read_file(path);
  if (!text) return make_error(escape_controls(path + ": " + text.error().message), text.error().code);
  return parse_web_config(*text, path);
}

}  // namespace hubprobe
