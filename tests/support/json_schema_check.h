// SPDX-License-Identifier: Apache-2.0
// A JSON document against one of the JSON Schemas in docs/, checked by a real validator: Debian's
// python3-jsonschema (installed by scripts/setup.sh), run by Debian's interpreter on purpose, whatever
// else is on PATH. Used by the schema tests of the preference document and of `hubprobe costmap`.
#pragma once

#include <sys/wait.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "preference_fixtures.h"

namespace hubprobe {
namespace {

struct SchemaCheck {
  int status = -1;  // 0 valid, 2 invalid, 3 validator missing; anything else: the check itself broke
  std::string output;
};

/// `document` against docs/`schema_file`, or against its `$defs` entry `definition` when not empty.
/// Formats ("date-time", ...) are checked where the validator knows them.
inline SchemaCheck check_json_schema(const nlohmann::json& document, const std::string& schema_file,
                                     const std::string& definition = "") {
  TempDir dir;
  const std::string script = dir.path() + "/check.py";
  const std::string doc = dir.path() + "/doc.json";
  write_file(script, R"(import json, sys
try:
    import jsonschema
except ImportError as error:
    print("python3-jsonschema is missing (scripts/setup.sh installs it):", error)
    sys.exit(3)
with open(sys.argv[1]) as f:
    schema = json.load(f)
jsonschema.Draft202012Validator.check_schema(schema)
if sys.argv[3]:
    schema = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": "#/$defs/" + sys.argv[3]}
with open(sys.argv[2]) as f:
    document = json.load(f)
validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
errors = list(validator.iter_errors(document))
for error in errors:
    print("/" + "/".join(str(p) for p in error.absolute_path) + ": " + error.message)
sys.exit(2 if errors else 0)
)");
  write_file(doc, document.dump(2));
  const std::string schema = std::string(HUBPROBE_SOURCE_DIR) + "/docs/" + schema_file;
  const std::string command =
      "/usr/bin/python3 '" + script + "' '" + schema + "' '" + doc + "' '" + definition + "' 2>&1";
  SchemaCheck check;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    check.output = std::string("popen: ") + std::strerror(errno);
    return check;
  }
  char buffer[512];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) check.output.append(buffer, n);
  const int status = ::pclose(pipe);
  check.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return check;
}

}  // namespace
}  // namespace hubprobe
