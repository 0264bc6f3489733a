// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/prefs.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <sstream>

#include "hubprobe/cli_usage.h"
#include "hubprobe/clock.h"
#include "hubprobe/preferences.h"
#include "hubprobe/prefs_documents.h"
#include "hubprobe/sink_config.h"

namespace hubprobe {

namespace {

// Exit statuses beyond 0 (shown) and 2 (usage).
constexpr int kNoDocument = 1;
constexpr int kEtcdUnreachable = 3;

// The client options for --etcd URL[,URL...]; the error is a usage error's message.
Result<EtcdClient::Options> etcd_options(const std::string& endpoints, const EtcdClient::Options& tls) {
  EtcdClient::Options options = tls;
  std::stringstream list(endpoints);
  for (std::string endpoint; std::getline(list, endpoint, ',');) {
    if (!endpoint.empty()) options.endpoints.push_back(endpoint);
  }
  if (options.endpoints.empty()) return make_error("--etcd: expected URL[,URL...], got \"" + endpoints + "\"");
  for (const auto& endpoint : options.endpoints) {
    if (endpoint.rfind("http://", 0) != 0 && endpoint.rfind("https://", 0) != 0) {
      return make_error("--etcd: \"" + endpoint + "\" is not an http:// or https:// URL");
    }
  }
  return options;
}

// Every document under PREFIX/preferences/ of the etcd cluster; nullopt (after printing why) when etcd
// cannot be read.
std::optional<PreferenceDocuments> read_etcd_preferences(const EtcdClient::Options& options, const std::string& prefix,
                                                         std::ostream& err) {
  EtcdClient client(options);
  const std::string key_prefix = preferences_prefix(prefix);
  auto values = client.get_prefix(key_prefix);
  if (!values) {
    err << "hubprobe prefs: " << values.error().message << "\n";
    return std::nullopt;
  }
  PreferenceDocuments source;
  for (const auto& kv : *values) add_preference_document(source, kv.key, kv.value, err);
  if (values->empty()) err << "hubprobe prefs: no keys under " << key_prefix << "\n";
  return source;
}

// The files `paths` stand for: a directory stands for every *.json file in it (not recursive, sorted).
std::vector<std::filesystem::path> preference_files(const std::vector<std::string>& paths, std::ostream& err) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (const auto& path : paths) {
    std::error_code error;
    if (!fs::is_directory(path, error)) {
      files.emplace_back(path);
      continue;
    }
    std::vector<fs::path> found;
    for (const auto& entry : fs::directory_iterator(path, error)) {
      if (entry.path().extension() == ".json" && !entry.is_directory()) found.push_back(entry.path());
    }
    if (error) err << "hubprobe prefs: " << path << ": " << error.message() << "\n";
    if (found.empty() && !error) err << "hubprobe prefs: " << path << ": no *.json files\n";
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

// One document per file.
PreferenceDocuments read_file_preferences(const std::vector<std::string>& paths, std::ostream& err) {
  PreferenceDocuments source;
  for (const auto& file : preference_files(paths, err)) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) {
      err << "hubprobe prefs: " << file.string() << ": cannot read: " << std::strerror(errno) << "\n";
      continue;
    }
    add_preference_document(source, file.string(), text.str(), err);
  }
  return source;
}

}  // namespace

int prefs_command(const PrefsArgs& args, std::ostream& out, std::ostream& err) {
  if (args.etcd.empty() && args.files.empty())
    return usage_error(err, "prefs: give --etcd URL[,URL...] or --file PATH...");
  PreferenceDocuments found;
  if (!args.files.empty()) {
    found = read_file_preferences(args.files, err);
  } else {
    auto options = etcd_options(args.etcd, args.tls);
    if (!options) return usage_error(err, options.error().message);
    auto read = read_etcd_preferences(*options, args.prefix, err);
    if (!read) return kEtcdUnreachable;
    found = std::move(*read);
  }
  if (!found.documents.empty()) out << render_preferences_table(found.documents, wall_now());
  if (found.valid == 0) {
    err << "hubprobe prefs: no valid preference document\n";
    return kNoDocument;
  }
  return 0;
}

}  // namespace hubprobe
