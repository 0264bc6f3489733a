#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Checks the operator assets (docs/operations.md, "Prometheus rules and alerts" and "Grafana"):
#   1. promtool check config  config/prometheus/prometheus.yml (and the rule file it names), and
#      config/prometheus/prometheus-tls.yml (the TLS and basic auth job; its files made empty in a
#      scratch folder: promtool checks they exist)
#   2. promtool check rules   config/prometheus/hubprobe.rules.yml
#   3. promtool test rules    tests/operator/rules_test.yml
#   4. config/grafana/hubprobe-dashboard.json is valid JSON, and every hubprobe_* metric the dashboard
#      and the rules use is documented in docs/metrics.md and exported by agent/daemon/src/agent_views.cpp.
# Run from anywhere; ctest runs it as the test `operator_assets` (label operator). Needs promtool
# (Debian: prometheus) and jq, both installed by scripts/setup.sh.
set -u

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root" || exit 2

prom_config=config/prometheus/prometheus.yml
prom_tls_config=config/prometheus/prometheus-tls.yml
rules=config/prometheus/hubprobe.rules.yml
rules_test=tests/operator/rules_test.yml
dashboard=config/grafana/hubprobe-dashboard.json
metrics_doc=docs/metrics.md
exporter=agent/daemon/src/agent_views.cpp

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
step() { echo "== $*"; }

for tool in promtool jq; do
    command -v "$tool" >/dev/null 2>&1 || { echo "FAIL: $tool not found (scripts/setup.sh installs it)" >&2; exit 1; }
done
for f in "$prom_config" "$prom_tls_config" "$rules" "$rules_test" "$dashboard" "$metrics_doc" "$exporter"; do
    [[ -f $f ]] || { echo "FAIL: $f is missing" >&2; exit 1; }
done

step "promtool check config $prom_config"
out="$(promtool check config "$prom_config" 2>&1)" || fail "promtool check config $prom_config:"$'\n'"$out"
# The example must actually load the rules (a relative rule_files path resolves against its directory).
grep -q 'SUCCESS: 1 rule files found' <<<"$out" || fail "$prom_config does not load exactly one rule file (rule_files must name hubprobe.rules.yml):"$'\n'"$out"

step "promtool check config $prom_tls_config"
scratch="$(mktemp -d)"
sed "s#/etc/prometheus/hubprobe/#$scratch/#g" "$prom_tls_config" >"$scratch/prometheus.yml"
touch "$scratch/ca.crt" "$scratch/prometheus.crt" "$scratch/prometheus.key" "$scratch/password"
out="$(promtool check config "$scratch/prometheus.yml" 2>&1)" || fail "promtool check config $prom_tls_config:"$'\n'"$out"
rm -rf "$scratch"

step "promtool check rules $rules"
out="$(promtool check rules "$rules" 2>&1)" || fail "promtool check rules $rules:"$'\n'"$out"

step "promtool test rules $rules_test"
out="$(promtool test rules "$rules_test" 2>&1)" || fail "promtool test rules $rules_test:"$'\n'"$out"

step "dashboard $dashboard is valid JSON"
if ! jq -e '.panels | length > 0' "$dashboard" >/dev/null 2>&1; then
    fail "$dashboard is not valid JSON or has no panels: $(jq . "$dashboard" 2>&1 >/dev/null | head -n 3)"
else
    n_expr="$(jq '[.. | objects | select(has("expr")) | .expr] | length' "$dashboard")"
    [[ $n_expr -gt 0 ]] || fail "$dashboard has no PromQL queries"
    # No hard-coded data source: every panel and query uses the ${DS_PROMETHEUS} input.
    bad_ds="$(jq -r '[.. | objects | select(has("datasource")) | .datasource
                      | select(type == "object" and .type == "prometheus" and .uid != "${DS_PROMETHEUS}")] | length' "$dashboard")"
    [[ $bad_ds -eq 0 ]] || fail "$dashboard: $bad_ds prometheus data source(s) not set to \${DS_PROMETHEUS}"
fi

step "hubprobe_* metrics used by the dashboard and the rules exist in $metrics_doc and $exporter"
# Names that start a word: `hubprobe_...` not preceded by a name character or ':' (recording rule
# names such as hub_peer_hub:hubprobe_rtt_p99_seconds:max are not exporter metrics). From the
# dashboard: only the queries (expr, variable definitions); from the rules: not comment lines.
used="$(
    {
        jq -r '.. | objects | (.expr?, .definition?, (.query? | if type == "object" then .query else . end)) // empty
               | strings' "$dashboard" 2>/dev/null
        grep -v '^[[:space:]]*#' "$rules"
    } | grep -oE '(^|[^A-Za-z0-9_:])hubprobe_[A-Za-z0-9_]*' | sed -E 's/^[^h]//' | sort -u
)"
[[ -n $used ]] || fail "no hubprobe_* metric found in $dashboard and $rules"
n_checked=0
for name in $used; do
    found=""
    # Histogram and summary series: hubprobe_rtt_seconds_bucket etc. are hubprobe_rtt_seconds.
    for candidate in "$name" "$(sed -E 's/_(bucket|sum|count)$//' <<<"$name")"; do
        if grep -qE "\`${candidate}(\`|\\{)" "$metrics_doc" && grep -qF "\"${candidate}\"" "$exporter"; then
            found="$candidate"
            break
        fi
    done
    if [[ -z $found ]]; then
        base="$(sed -E 's/_(bucket|sum|count)$//' <<<"$name")"
        where=""
        grep -qE "\`(${name}|${base})(\`|\\{)" "$metrics_doc" || where+=" $metrics_doc"
        grep -qE "\"(${name}|${base})\"" "$exporter" || where+=" $exporter"
        fail "metric $name is used by the dashboard or the rules but missing from:$where"
    fi
    n_checked=$((n_checked + 1))
done
echo "   $n_checked metric names checked"

if [[ $failures -gt 0 ]]; then
    echo "operator assets: $failures check(s) FAILED" >&2
    exit 1
fi
echo "operator assets: all checks passed"
