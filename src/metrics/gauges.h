#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace streamgrid::metrics {

// Gauges (and counters) whose values are read when metrics are collected
// (open connections, queue lengths, bytes cached, totals a component keeps):
// the component keeps its own count and this asks for it at each scrape, so
// nothing has to be pushed on every change. Thread-safe. Collected with the
// exposition (see MetricsText).
class Gauges : public prometheus::Collectable {
 public:
  using Labels = std::map<std::string, std::string>;

  // Adds the series `name{labels}` whose value `read` returns; `help` is kept
  // from the first series of each name. `read` is called on the collecting
  // thread and must be thread-safe and quick; it must stay callable as long
  // as this object is collected.
  void Add(const std::string& name, const std::string& help, Labels labels,
           std::function<double()> read);
  // The same for a counter: `read` must never go down (a total since start).
  // A name is either a gauge's or a counter's, as its first series says.
  void AddCounter(const std::string& name, const std::string& help, Labels labels,
                  std::function<double()> read);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  struct Series {
    Labels labels;
    std::function<double()> read;
  };
  void AddSeries(const std::string& name, const std::string& help, prometheus::MetricType type,
                 Labels labels, std::function<double()> read);

  struct Family {
    prometheus::MetricType type;
    std::string help;
    std::vector<Series> series;
  };
  mutable std::mutex mu_;
  std::map<std::string, Family> families_;  // by name; guarded by mu_
};

}  // namespace streamgrid::metrics
