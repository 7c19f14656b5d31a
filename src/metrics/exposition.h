#pragma once

#include <prometheus/collectable.h>

#include <string>
#include <string_view>
#include <vector>

namespace streamgrid::metrics {

// The Content-Type of Prometheus's text exposition format.
inline constexpr std::string_view kTextContentType = "text/plain; version=0.0.4; charset=utf-8";

// Everything `collectables` hold now, in Prometheus's text exposition format.
std::string MetricsText(const std::vector<const prometheus::Collectable*>& collectables);

}  // namespace streamgrid::metrics
