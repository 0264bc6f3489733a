// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/metrics_text.h"

#include <charconv>
#include <cmath>

namespace hubprobe {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricType;

void append_number(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else {
    char buffer[32];
    const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
    out.append(buffer, result.ptr);
  }
}

void append_number(std::string& out, uint64_t value) {
  char buffer[24];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  out.append(buffer, result.ptr);
}

void append_escaped(std::string& out, const std::string& text, bool quote_too) {
  for (const char ch : text) {
    if (ch == '\\') {
      out += "\\\\";
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch == '"' && quote_too) {
      out += "\\\"";
    } else {
      out += ch;
    }
  }
}

// `{a="x",b="y"` without the closing brace, so an extra label (quantile, le) can follow.
std::string open_labels(const std::vector<ClientMetric::Label>& labels) {
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ',';
    out += labels[i].name;
    out += "=\"";
    append_escaped(out, labels[i].value, true);
    out += '"';
  }
  return out;
}

void sample(std::string& out, const std::string& name, const char* suffix, const std::string& labels_open,
            const char* extra_name, const std::string& extra_value, double value) {
  out += name;
  out += suffix;
  const bool has_labels = labels_open.size() > 1;
  if (has_labels || extra_name) {
    out += labels_open;
    if (extra_name) {
      if (has_labels) out += ',';
      out += extra_name;
      out += "=\"";
      out += extra_value;
      out += '"';
    }
    out += '}';
  }
  out += ' ';
  append_number(out, value);
  out += '\n';
}

std::string number_text(double value) {
  std::string text;
  append_number(text, value);
  return text;
}

const char* type_name(MetricType type) {
  switch (type) {
    case MetricType::Counter: return "counter";
    case MetricType::Gauge: return "gauge";
    case MetricType::Summary: return "summary";
    case MetricType::Histogram: return "histogram";
    default: return "untyped";
  }
}

}  // namespace

std::string to_prometheus_text(const std::vector<prometheus::MetricFamily>& families) {
  std::string out;
  out.reserve(1 << 20);
  // Histogram bounds repeat for every peer: format each distinct bound once.
  std::vector<std::string> bound_texts;
  std::vector<double> bound_values;
  for (const auto& family : families) {
    out += "# HELP ";
    out += family.name;
    out += ' ';
    append_escaped(out, family.help, false);
    out += "\n# TYPE ";
    out += family.name;
    out += ' ';
    out += type_name(family.type);
    out += '\n';
    for (const auto& metric : family.metric) {
      const std::string labels = open_labels(metric.label);
      switch (family.type) {
        case MetricType::Counter: sample(out, family.name, "", labels, nullptr, "", metric.counter.value); break;
        case MetricType::Gauge: sample(out, family.name, "", labels, nullptr, "", metric.gauge.value); break;
        case MetricType::Summary:
          for (const auto& q : metric.summary.quantile) {
            sample(out, family.name, "", labels, "quantile", number_text(q.quantile), q.value);
          }
          sample(out, family.name, "_sum", labels, nullptr, "", metric.summary.sample_sum);
          sample(out, family.name, "_count", labels, nullptr, "", static_cast<double>(metric.summary.sample_count));
          break;
        case MetricType::Histogram: {
          const auto& buckets = metric.histogram.bucket;
          if (bound_values.size() != buckets.size() ||
              !std::equal(buckets.begin(), buckets.end(), bound_values.begin(),
                          [](const auto& b, double v) { return b.upper_bound == v; })) {
            bound_values.clear();
            bound_texts.clear();
            for (const auto& b : buckets) {
              bound_values.push_back(b.upper_bound);
              bound_texts.push_back(number_text(b.upper_bound));
            }
          }
          for (size_t i = 0; i < buckets.size(); ++i) {
            out += family.name;
            out += "_bucket";
            out += labels;
            if (labels.size() > 1) out += ',';
            out += "le=\"";
            out += bound_texts[i];
            out += "\"} ";
            append_number(out, buckets[i].cumulative_count);
            out += '\n';
          }
          sample(out, family.name, "_sum", labels, nullptr, "", metric.histogram.sample_sum);
          sample(out, family.name, "_count", labels, nullptr, "", static_cast<double>(metric.histogram.sample_count));
          break;
        }
        default: sample(out, family.name, "", labels, nullptr, "", metric.untyped.value); break;
      }
    }
  }
  return out;
}

}  // namespace hubprobe
