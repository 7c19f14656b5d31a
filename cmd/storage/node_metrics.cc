#include "node_metrics.h"

#include <exception>

#include "absl/strings/str_cat.h"

namespace streamgrid::storage {

NodeMetrics::NodeMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      gauges_(std::make_shared<metrics::Gauges>()),
      grpc_(*registry_) {}

absl::StatusOr<std::unique_ptr<NodeMetrics>> NodeMetrics::Start(const std::string& listen,
                                                                const StorageEngine& engine,
                                                                const Scrubber& scrubber) {
  std::unique_ptr<NodeMetrics> node_metrics(new NodeMetrics());
  metrics::Gauges& gauges = *node_metrics->gauges_;
  // One statvfs per reading; a scrape every few seconds costs nothing.
  const auto usage = [&engine](uint64_t StorageUsage::*field) {
    return [&engine, field] {
      absl::StatusOr<StorageUsage> now = engine.Usage();
      return now.ok() ? static_cast<double>((*now).*field) : 0.0;
    };
  };
  gauges.Add("streamgrid_node_files", "Files stored on this node.", {},
             usage(&StorageUsage::files));
  gauges.Add("streamgrid_node_bytes_stored", "Bytes of the files stored on this node.", {},
             usage(&StorageUsage::bytes_used));
  gauges.Add("streamgrid_node_disk_free_bytes",
             "Free bytes of the file system holding the data directory.", {},
             usage(&StorageUsage::free_bytes));
  gauges.Add("streamgrid_node_disk_total_bytes",
             "Size of the file system holding the data directory.", {},
             usage(&StorageUsage::total_bytes));
  const auto scrub = [&scrubber](uint64_t ScrubStats::*field) {
    return [&scrubber, field] { return static_cast<double>(scrubber.stats().*field); };
  };
  gauges.AddCounter("streamgrid_node_scrub_files_checked_total",
                    "Files the scrubber re-read and checked since start.", {},
                    scrub(&ScrubStats::files_checked));
  gauges.AddCounter("streamgrid_node_scrub_bytes_checked_total",
                    "Bytes the scrubber re-read and checked since start.", {},
                    scrub(&ScrubStats::bytes_checked));
  gauges.AddCounter("streamgrid_node_scrub_damaged_total",
                    "Damaged copies the scrubber found since start.", {},
                    scrub(&ScrubStats::damaged_found));
  gauges.AddCounter("streamgrid_node_scrub_passes_total",
                    "Passes over every file the scrubber completed since start.", {},
                    scrub(&ScrubStats::passes_completed));
  gauges.AddCounter(
      "streamgrid_node_quarantined_total",
      "Damaged copies moved to quarantine since start (by scrubs, reads and pulls).", {},
      [&engine] { return static_cast<double>(engine.quarantine().added_since_open()); });
  try {
    // Two threads: scrapes are rare and small.
    node_metrics->exposer_ = std::make_unique<prometheus::Exposer>(listen, 2);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics at ", listen, ": ", e.what()));
  }
  node_metrics->exposer_->RegisterCollectable(node_metrics->registry_);
  node_metrics->exposer_->RegisterCollectable(node_metrics->gauges_);
  const std::vector<int> ports = node_metrics->exposer_->GetListeningPorts();
  if (ports.empty()) return absl::UnavailableError("metrics: no listening port");
  node_metrics->port_ = ports.front();
  return node_metrics;
}

}  // namespace streamgrid::storage
