// SPDX-License-Identifier: Apache-2.0
// The Prometheus text exposition format (version 0.0.4) for prometheus-cpp metric families, written
// straight into one string. prometheus-cpp's TextSerializer goes through ostreams and printf and needs
// ~36 ms for the 18 000 series of an agent with 100 peers; this needs a few.
#pragma once

#include <prometheus/metric_family.h>

#include <string>
#include <unordered_map>
#include <vector>

namespace hubprobe {

/// Builds the text while the metrics come, in any order of families: each family's sample lines go into
/// a buffer of their own, so an exporter with millions of series keeps text, not metric objects (10 000
/// peers: 2 million series). Counters, gauges, summaries and histograms (untyped as gauges' syntax);
/// label values and help texts escaped; NaN and infinities as Prometheus spells them. One writer per
/// thread.
class ExpositionWriter {
 public:
  /// Declares family `name` (nothing when it exists): a family without metrics is its HELP and TYPE.
  void family(const std::string& name, const std::string& help, prometheus::MetricType type);
  /// Appends one metric of family `name`; the family's help and type are the ones it was declared with.
  void add(const std::string& name, const std::string& help, prometheus::MetricType type,
           const prometheus::ClientMetric& metric);
  /// The exposition: every family's HELP, TYPE and sample lines, families in the order they first came.
  /// Leaves the writer empty.
  std::string take();

 private:
  struct Family {
    std::string name, help;
    prometheus::MetricType type;
    std::string lines;
  };
  void histogram_lines(Family& family, const std::string& labels, const prometheus::ClientMetric& metric);

  std::vector<Family> families_;
  std::unordered_map<std::string, size_t> index_;
  // Histogram bounds repeat for every peer: each distinct bound is formatted once.
  std::vector<double> bound_values_;
  std::vector<std::string> bound_texts_;
};

/// The exposition of `families`, through an ExpositionWriter. Thread-safe.
std::string to_prometheus_text(const std::vector<prometheus::MetricFamily>& families);

}  // namespace hubprobe
