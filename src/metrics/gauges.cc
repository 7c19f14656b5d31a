#include "metrics/gauges.h"

#include <prometheus/client_metric.h>
#include <prometheus/metric_type.h>

namespace streamgrid::metrics {

void Gauges::Add(const std::string& name, const std::string& help, Labels labels,
                 std::function<double()> read) {
  AddSeries(name, help, prometheus::MetricType::Gauge, std::move(labels), std::move(read));
}

void Gauges::AddCounter(const std::string& name, const std::string& help, Labels labels,
                        std::function<double()> read) {
  AddSeries(name, help, prometheus::MetricType::Counter, std::move(labels), std::move(read));
}

void Gauges::AddSeries(const std::string& name, const std::string& help,
                       prometheus::MetricType type, Labels labels, std::function<double()> read) {
  std::lock_guard lock(mu_);
  auto [it, added] = families_.try_emplace(name, Family{type, help, {}});
  it->second.series.push_back({std::move(labels), std::move(read)});
}

std::vector<prometheus::MetricFamily> Gauges::Collect() const {
  std::lock_guard lock(mu_);
  std::vector<prometheus::MetricFamily> out;
  out.reserve(families_.size());
  for (const auto& [name, family] : families_) {
    prometheus::MetricFamily collected{name, family.help, family.type, {}};
    for (const Series& series : family.series) {
      prometheus::ClientMetric metric;
      for (const auto& [label, value] : series.labels) metric.label.push_back({label, value});
      if (family.type == prometheus::MetricType::Counter) {
        metric.counter.value = series.read();
      } else {
        metric.gauge.value = series.read();
      }
      collected.metric.push_back(std::move(metric));
    }
    out.push_back(std::move(collected));
  }
  return out;
}

}  // namespace streamgrid::metrics
