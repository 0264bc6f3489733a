# SPDX-License-Identifier: Apache-2.0
# Summary statistics of one RTT sample per line (microseconds, first field), the same way for every tool
# and the same way hubprobe's own summary does (agent/stats/src/summary.cpp): nearest-rank percentiles
# (the value at rank ceil(q*n) of the sorted samples) and the population standard deviation.
# Input must be sorted ascending (sort -g). Prints one line:
#   n min p50 p90 p99 p999 max mean stddev
# Ranks are computed in integers (per mille) so that 0.99*2000 is exactly rank 1980.
{ v[++n] = $1 + 0; sum += $1 }

function rank(per_mille,    r) {
  r = int((per_mille * n + 999) / 1000)
  if (r < 1) r = 1
  if (r > n) r = n
  return v[r]
}

END {
  if (n == 0) { print "0 - - - - - - - -"; exit }
  mean = sum / n
  for (i = 1; i <= n; i++) squares += (v[i] - mean) * (v[i] - mean)
  printf "%d %.3f %.3f %.3f %.3f %.3f %.3f %.3f %.3f\n", n, v[1], rank(500), rank(900), rank(990), rank(999), v[n],
         mean, sqrt(squares / n)
}
