// SPDX-License-Identifier: Apache-2.0
// The fast /metrics serializer against prometheus-cpp's own TextSerializer: same series, same values.
#include "hubprobe/metrics_text.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <regex>
#include <sstream>

namespace hubprobe {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// `le` and `quantile` values rewritten in one number format, so both serializers' series compare equal.
std::string normalized(const std::string& series) {
  static const std::regex number_label(R"re((le|quantile)="([^"]+)")re");
  std::string out;
  auto begin = series.cbegin();
  for (std::smatch m; std::regex_search(begin, series.cend(), m, number_label); begin = m.suffix().first) {
    out.append(begin, m[0].first);
    const std::string text = m[2];
    const double value = text == "+Inf" ? std::numeric_limits<double>::infinity() : std::stod(text);
    char buffer[32];
    out += m[1].str() + "=\"" + std::string(buffer, std::to_chars(buffer, buffer + 32, value).ptr) + "\"";
  }
  out.append(begin, series.cend());
  return out;
}

// "name{labels} value" lines -> value by series text; comments kept separately.
std::map<std::string, double> samples(const std::string& text, std::vector<std::string>* comments = nullptr) {
  std::map<std::string, double> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    if (line[0] == '#') {
      if (comments) comments->push_back(line);
      continue;
    }
    const size_t space = line.rfind(' ');
    const std::string value = line.substr(space + 1);
    out[normalized(line.substr(0, space))] = (value == "NaN" || value == "Nan")
                                                 ? std::numeric_limits<double>::quiet_NaN()
                                             : value == "+Inf" ? std::numeric_limits<double>::infinity()
                                                               : std::stod(value);
  }
  return out;
}

std::vector<MetricFamily> families() {
  std::vector<MetricFamily> f;
  ClientMetric counter;
  counter.label = {{"hub", "gz"}, {"peer", "sg \"edge\"\\1"}};
  counter.counter.value = 12345678901.0;
  f.push_back({"hubprobe_probes_sent_total", "Probes sent.", MetricType::Counter, {counter}});
  ClientMetric gauge;
  gauge.label = {{"hub", "gz"}};
  gauge.gauge.value = 1.5e-6;
  ClientMetric bare;
  bare.gauge.value = -2;
  f.push_back({"hubprobe_clock_error_bound_seconds", "Error.", MetricType::Gauge, {gauge, bare}});
  ClientMetric summary;
  summary.label = {{"peer", "a"}};
  summary.summary.sample_count = 3;
  summary.summary.sample_sum = 0.06;
  summary.summary.quantile = {{0, 0.019}, {0.5, 0.02}, {0.99, std::numeric_limits<double>::quiet_NaN()}, {1, 0.021}};
  f.push_back({"hubprobe_rtt_window_seconds", "RTT.", MetricType::Summary, {summary}});
  MetricFamily histogram{"hubprobe_rtt_seconds", "RTT histogram.", MetricType::Histogram, {}};
  for (const char* peer : {"a", "b"}) {
    ClientMetric h;
    h.label = {{"peer", peer}};
    h.histogram.sample_count = 7;
    h.histogram.sample_sum = 0.14;
    h.histogram.bucket = {{1, 0.0005}, {3, 0.020}, {6, 0.021}, {7, std::numeric_limits<double>::infinity()}};
    histogram.metric.push_back(h);
  }
  f.push_back(histogram);
  return f;
}

TEST(MetricsText, SameSeriesAndValuesAsPrometheusCpp) {
  const auto input = families();
  std::vector<std::string> ours_comments, theirs_comments;
  const auto ours = samples(to_prometheus_text(input), &ours_comments);
  const auto theirs = samples(prometheus::TextSerializer().Serialize(input), &theirs_comments);
  EXPECT_EQ(ours_comments, theirs_comments);
  ASSERT_EQ(ours.size(), theirs.size());
  for (const auto& [series, value] : theirs) {
    ASSERT_TRUE(ours.count(series)) << series;
    if (std::isnan(value)) {
      EXPECT_TRUE(std::isnan(ours.at(series))) << series;
    } else {
      EXPECT_DOUBLE_EQ(ours.at(series), value) << series;
    }
  }
}

TEST(MetricsText, EscapesAndSpecialValues) {
  const std::string text = to_prometheus_text(families());
  EXPECT_NE(text.find(R"(peer="sg \"edge\"\\1")"), std::string::npos) << text;
  // prometheus-cpp's serializer leaves a newline or a backslash in a help text as it is; the format wants
  // them escaped, as here.
  const std::string help = to_prometheus_text({{"hubprobe_peers", "One\ntwo \\ three.", MetricType::Gauge, {}}});
  EXPECT_NE(help.find("# HELP hubprobe_peers One\\ntwo \\\\ three.\n"), std::string::npos) << help;
  EXPECT_NE(text.find(R"(hubprobe_rtt_window_seconds{peer="a",quantile="0.99"} NaN)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(hubprobe_rtt_seconds_bucket{peer="b",le="+Inf"} 7)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(hubprobe_rtt_seconds_bucket{peer="a",le="0.02"} 3)"), std::string::npos) << text;
  EXPECT_NE(text.find("hubprobe_clock_error_bound_seconds -2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("hubprobe_probes_sent_total{hub=\"gz\",peer=\"sg \\\"edge\\\"\\\\1\"} 12345678901\n"),
            std::string::npos)
      << text;
  // A newline in a label value is escaped, never a line break in the exposition.
  ClientMetric odd;
  odd.label = {{"peer", "two\nlines"}};
  const std::string escaped = to_prometheus_text({{"hubprobe_peers", "Peers.", MetricType::Gauge, {odd}}});
  EXPECT_NE(escaped.find(R"(hubprobe_peers{peer="two\nlines"} 0)"), std::string::npos) << escaped;
}

}  // namespace
}  // namespace hubprobe
