// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/metrics_text.h"

#include <algorithm>
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

void ExpositionWriter::family(const std::string& name, const std::string& help, MetricType type) {
  if (index_.try_emplace(name, families_.size()).second) families_.push_back(Family{name, help, type, {}});
}

void ExpositionWriter::add(const std::string& name, const std::string& help, MetricType type,
                           const ClientMetric& metric) {
  family(name, help, type);
  Family& family = families_[index_.at(name)];
  std::string& out = family.lines;
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
    case MetricType::Histogram: histogram_lines(family, labels, metric); break;
    default: sample(out, family.name, "", labels, nullptr, "", metric.untyped.value); break;
  }
}

void ExpositionWriter::histogram_lines(Family& family, const std::string& labels, const ClientMetric& metric) {
  const auto& buckets = metric.histogram.bucket;
  if (bound_values_.size() != buckets.size() ||
      !std::equal(buckets.begin(), buckets.end(), bound_values_.begin(),
                  [](const auto& b, double v) { return b.upper_bound == v; })) {
    bound_values_.clear();
    bound_texts_.clear();
    for (const auto& b : buckets) {
      bound_values_.push_back(b.upper_bound);
      bound_texts_.push_back(number_text(b.upper_bound));
    }
  }
  std::string& out = family.lines;
  for (size_t i = 0; i < buckets.size(); ++i) {
    out += family.name;
    out += "_bucket";
    out += labels;
    if (labels.size() > 1) out += ',';
    out += "le=\"";
    out += bound_texts_[i];
    out += "\"} ";
    append_number(out, buckets[i].cumulative_count);
    out += '\n';
  }
  sample(out, family.name, "_sum", labels, nullptr, "", metric.histogram.sample_sum);
  sample(out, family.name, "_count", labels, nullptr, "", static_cast<double>(metric.histogram.sample_count));
}

std::string ExpositionWriter::take() {
  size_t size = 0;
  for (const Family& family : families_) size += family.lines.size() + family.help.size() + 2 * family.name.size() + 32;
  std::string out;
  out.reserve(size);
  for (Family& family : families_) {
    out += "# HELP ";
    out += family.name;
    out += ' ';
    append_escaped(out, family.help, false);
    out += "\n# TYPE ";
    out += family.name;
    out += ' ';
    out += type_name(family.type);
    out += '\n';
    out += family.lines;
    std::string().swap(family.lines);  // freed as it is copied: the peak is the text, not twice it
  }
  families_.clear();
  index_.clear();
  return out;
}

std::string to_prometheus_text(const std::vector<prometheus::MetricFamily>& families) {
  ExpositionWriter writer;
  for (const auto& family : families) {
    writer.family(family.name, family.help, family.type);
    for (const auto& metric : family.metric) writer.add(family.name, family.help, family.type, metric);
  }
  return writer.take();
}

}  // namespace hubprobe
