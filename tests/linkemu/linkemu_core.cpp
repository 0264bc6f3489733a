// SPDX-License-Identifier: Apache-2.0
#include "linkemu_core.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace hubprobe::linkemu {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

/// Splits "12.5ms" into 12.5 and "ms". nullopt when there is no leading finite number >= 0.
std::optional<std::pair<double, std::string>> number_suffix(const std::string& in) {
  const std::string s = lower(in);
  if (s.empty()) return std::nullopt;
  const char* begin = s.c_str();
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(begin, &end);
  if (end == begin || errno != 0 || !std::isfinite(v) || v < 0) return std::nullopt;
  return std::make_pair(v, std::string(end));
}

bool parse_bool(const std::string& v, bool* out) {
  const std::string s = lower(v);
  if (s == "1" || s == "yes" || s == "true" || s == "on") {
    *out = true;
    return true;
  }
  if (s == "0" || s == "no" || s == "false" || s == "off") {
    *out = false;
    return true;
  }
  return false;
}

std::string fmt_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

std::optional<int64_t> parse_duration_ns(const std::string& s) {
  const auto ns = number_suffix(s);
  if (!ns) return std::nullopt;
  double mult = 0;
  const std::string& u = ns->second;
  if (u == "ns")
    mult = 1;
  else if (u == "us")
    mult = 1e3;
  else if (u == "ms" || u.empty())
    mult = 1e6;
  else if (u == "s")
    mult = 1e9;
  else
    return std::nullopt;
  const double v = ns->first * mult;
  if (v > 3.6e12) return std::nullopt;  // an hour is plenty
  return static_cast<int64_t>(std::llround(v));
}

std::optional<double> parse_probability(const std::string& s) {
  const auto ns = number_suffix(s);
  if (!ns) return std::nullopt;
  double v = ns->first;
  if (ns->second == "%")
    v /= 100.0;
  else if (!ns->second.empty())
    return std::nullopt;
  if (v > 1.0) return std::nullopt;
  return v;
}

std::optional<uint64_t> parse_rate_bps(const std::string& s) {
  const auto ns = number_suffix(s);
  if (!ns) return std::nullopt;
  const std::string& u = ns->second;
  double mult = 0;
  if (u.empty() || u == "bit" || u == "bps")
    mult = 1;
  else if (u == "k" || u == "kbit")
    mult = 1e3;
  else if (u == "m" || u == "mbit")
    mult = 1e6;
  else if (u == "g" || u == "gbit")
    mult = 1e9;
  else
    return std::nullopt;
  const double v = ns->first * mult;
  if (v > 1e12) return std::nullopt;
  return static_cast<uint64_t>(std::llround(v));
}

std::optional<uint64_t> parse_bytes(const std::string& s) {
  const auto ns = number_suffix(s);
  if (!ns) return std::nullopt;
  const std::string& u = ns->second;
  double mult = 0;
  if (u.empty() || u == "b")
    mult = 1;
  else if (u == "k" || u == "kb")
    mult = 1024;
  else if (u == "m" || u == "mb")
    mult = 1024 * 1024;
  else
    return std::nullopt;
  const double v = ns->first * mult;
  if (v > 1e12) return std::nullopt;
  return static_cast<uint64_t>(std::llround(v));
}

std::optional<std::string> apply_setting(DirParams& p, const std::string& key, const std::string& value) {
  const std::string k = lower(key);
  const std::string bad = "bad value for " + k + ": '" + value + "'";
  if (k == "delay" || k == "jitter") {
    const auto v = parse_duration_ns(value);
    if (!v) return bad;
    (k == "delay" ? p.delay_ns : p.jitter_ns) = *v;
  } else if (k == "dist") {
    const std::string v = lower(value);
    if (v == "uniform")
      p.dist = JitterDist::kUniform;
    else if (v == "normal")
      p.dist = JitterDist::kNormal;
    else
      return bad + " (uniform or normal)";
  } else if (k == "reorder") {
    if (!parse_bool(value, &p.reorder)) return bad;
  } else if (k == "loss" || k == "burst_p" || k == "burst_r") {
    const auto v = parse_probability(value);
    if (!v) return bad;
    if (k == "loss")
      p.loss = *v;
    else if (k == "burst_p")
      p.ge_p = *v;
    else {
      if (*v <= 0) return bad + " (burst_r must be > 0)";
      p.ge_r = *v;
    }
  } else if (k == "rate") {
    const auto v = parse_rate_bps(value);
    if (!v) return bad;
    p.rate_bps = *v;
  } else if (k == "burst" || k == "limit") {
    const auto v = parse_bytes(value);
    if (!v || *v == 0) return bad;
    (k == "burst" ? p.burst_bytes : p.limit_bytes) = *v;
  } else {
    return "unknown key '" + key + "' (delay jitter dist reorder loss burst_p burst_r rate burst limit)";
  }
  return std::nullopt;
}

std::string format_duration(int64_t ns) {
  if (ns == 0) return "0";
  if (ns % 1000000000 == 0) return std::to_string(ns / 1000000000) + "s";
  if (ns % 1000000 == 0) return std::to_string(ns / 1000000) + "ms";
  if (ns % 1000 == 0) return std::to_string(ns / 1000) + "us";
  return std::to_string(ns) + "ns";
}

std::string format_params(const DirParams& p) {
  return "delay=" + format_duration(p.delay_ns) + " jitter=" + format_duration(p.jitter_ns) +
         " dist=" + (p.dist == JitterDist::kUniform ? "uniform" : "normal") + " reorder=" + (p.reorder ? "1" : "0") +
         " loss=" + fmt_double(p.loss * 100) + "%" + " burst_p=" + fmt_double(p.ge_p * 100) +
         "% burst_r=" + fmt_double(p.ge_r * 100) + "%" + " rate=" + std::to_string(p.rate_bps) +
         " burst=" + std::to_string(p.burst_bytes) + " limit=" + std::to_string(p.limit_bytes);
}

void Direction::set_params(const DirParams& p) {
  params_ = p;
  if (p.ge_p <= 0) ge_bad_ = false;
  if (p.rate_bps == 0) {
    tb_backlog_.clear();
    tb_backlog_bytes_ = 0;
    tb_time_ = INT64_MIN;
    tb_last_out_ = INT64_MIN;
  }
}

int64_t Direction::rate_departure(int64_t arrival_ns, size_t len, bool* over_limit) {
  *over_limit = false;
  if (params_.rate_bps == 0) return arrival_ns;
  while (!tb_backlog_.empty() && tb_backlog_.front().first <= arrival_ns) {
    tb_backlog_bytes_ -= tb_backlog_.front().second;
    tb_backlog_.pop_front();
  }
  if (tb_backlog_bytes_ + len > params_.limit_bytes) {
    *over_limit = true;
    return 0;
  }
  const double bytes_per_ns = static_cast<double>(params_.rate_bps) / 8e9;
  const double depth = static_cast<double>(params_.burst_bytes);
  const int64_t ready = std::max(arrival_ns, tb_last_out_);
  if (tb_time_ == INT64_MIN) {
    tokens_ = depth;  // a bucket that has been idle forever is full
  } else {
    tokens_ = std::min(depth, tokens_ + static_cast<double>(ready - tb_time_) * bytes_per_ns);
  }
  tb_time_ = ready;
  const double need = static_cast<double>(len);
  int64_t out = ready;
  if (tokens_ >= need) {
    tokens_ -= need;
  } else {
    const int64_t wait = static_cast<int64_t>(std::ceil((need - tokens_) / bytes_per_ns));
    out = ready + wait;
    tokens_ = std::max(0.0, tokens_ + static_cast<double>(wait) * bytes_per_ns - need);
    tb_time_ = out;
  }
  tb_last_out_ = out;
  if (out > arrival_ns) {
    tb_backlog_.emplace_back(out, len);
    tb_backlog_bytes_ += len;
  }
  return out;
}

int64_t Direction::jitter_sample() {
  const int64_t j = params_.jitter_ns;
  if (j <= 0) return 0;
  if (params_.dist == JitterDist::kUniform) return std::uniform_int_distribution<int64_t>(-j, j)(rng_);
  std::normal_distribution<double> nd(0.0, static_cast<double>(j));
  for (;;) {
    const double x = nd(rng_);
    if (std::fabs(x) <= 2.0 * static_cast<double>(j)) return static_cast<int64_t>(std::llround(x));
  }
}

Verdict Direction::arrive(int64_t arrival_ns, std::vector<uint8_t> frame, int64_t* departure_ns) {
  ++counters_.received;
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  if (params_.loss > 0 && u01(rng_) < params_.loss) {
    ++counters_.drop_loss;
    return Verdict::kDropLoss;
  }
  if (params_.ge_p > 0) {
    const double u = u01(rng_);
    ge_bad_ = ge_bad_ ? !(u < params_.ge_r) : (u < params_.ge_p);
    if (ge_bad_) {
      ++counters_.drop_burst;
      return Verdict::kDropBurst;
    }
  }
  bool over = false;
  const int64_t rate_out = rate_departure(arrival_ns, frame.size(), &over);
  if (over) {
    ++counters_.drop_queue;
    return Verdict::kDropQueue;
  }
  const int64_t j = std::max(jitter_sample(), -params_.delay_ns);
  int64_t d = rate_out + params_.delay_ns + j;
  if (!params_.reorder) d = std::max(d, last_departure_);
  last_departure_ = std::max(last_departure_, d);
  if (departure_ns) *departure_ns = d;
  heap_.push_back(Scheduled{d, seq_++, std::move(frame)});
  std::push_heap(heap_.begin(), heap_.end(), Later{});
  return Verdict::kQueued;
}

std::optional<int64_t> Direction::next_due() const {
  if (heap_.empty()) return std::nullopt;
  return heap_.front().departure_ns;
}

std::optional<Scheduled> Direction::pop_due(int64_t now_ns) {
  if (heap_.empty() || heap_.front().departure_ns > now_ns) return std::nullopt;
  std::pop_heap(heap_.begin(), heap_.end(), Later{});
  Scheduled s = std::move(heap_.back());
  heap_.pop_back();
  return s;
}

ClockOffset realtime_offset_floor(const std::function<int64_t(ClockId)>& read, int tries, int64_t tight_ns) {
  ClockOffset best;
  bool have = false;
  for (int i = 0; i < std::max(tries, 1); ++i) {
    const int64_t m1 = read(ClockId::kMonotonic);
    const int64_t real = read(ClockId::kRealtime);
    const int64_t m2 = read(ClockId::kMonotonic);
    const int64_t offset = real - m2;  // <= true offset: m2 is read after real
    const int64_t gap = m2 - m1;       // bounds how much too small it is
    best.mono_ns = m2;
    if (!have || offset > best.offset_ns) {
      best.offset_ns = offset;
      best.uncertainty_ns = gap;
      have = true;
    }
    if (gap <= tight_ns) break;
  }
  return best;
}

std::string format_counters(const Direction& d) {
  const DirCounters& c = d.counters();
  return "received=" + std::to_string(c.received) + " forwarded=" + std::to_string(c.forwarded) +
         " drop_loss=" + std::to_string(c.drop_loss) + " drop_burst=" + std::to_string(c.drop_burst) +
         " drop_queue=" + std::to_string(c.drop_queue) + " send_error=" + std::to_string(c.send_error) +
         " queued=" + std::to_string(d.queued()) + " late_max_us=" + std::to_string(c.late_max_ns / 1000) +
         " late_over_100us=" + std::to_string(c.late_over_100us);
}

std::string control_reply(const std::string& line, Direction& ab, Direction& ba) {
  std::istringstream in(line);
  std::string verb;
  in >> verb;
  verb = lower(verb);
  if (verb == "show") {
    return "ab " + format_params(ab.params()) + " " + format_counters(ab) + "\nba " + format_params(ba.params()) + " " +
           format_counters(ba) + "\n";
  }
  if (verb != "set") return "error: unknown command '" + verb + "' (set, show)\n";
  std::string dir;
  in >> dir;
  dir = lower(dir);
  const bool do_ab = dir == "ab" || dir == "both";
  const bool do_ba = dir == "ba" || dir == "both";
  if (!do_ab && !do_ba) return "error: direction must be ab, ba or both\n";
  DirParams pab = ab.params();
  DirParams pba = ba.params();
  std::string kv;
  int n = 0;
  while (in >> kv) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos) return "error: expected key=value, got '" + kv + "'\n";
    const std::string k = kv.substr(0, eq);
    const std::string v = kv.substr(eq + 1);
    if (do_ab) {
      if (auto err = apply_setting(pab, k, v)) return "error: " + *err + "\n";
    }
    if (do_ba) {
      if (auto err = apply_setting(pba, k, v)) return "error: " + *err + "\n";
    }
    ++n;
  }
  if (n == 0) return "error: set needs at least one key=value\n";
  // All or nothing: only applied when every setting parsed.
  if (do_ab) ab.set_params(pab);
  if (do_ba) ba.set_params(pba);
  return "ok\n";
}

}  // namespace hubprobe::linkemu
