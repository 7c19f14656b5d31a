#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "cluster/cluster.h"
#include "repair/repair_stats.h"
#include "storage/hint_store.h"

namespace streamgrid::repair {

struct HintHandoffOptions {
  // Time between passes (the first pass starts at once).
  std::chrono::milliseconds interval = std::chrono::seconds(10);
  // Hints a pass handles per stand-in at most, so that a pass stays bounded;
  // the rest wait for the next pass.
  size_t max_hints_per_node = 10'000;
  // Hints asked for per ListHints call.
  uint32_t page_size = 500;
};

// What one pass did.
struct HintHandoffPass {
  size_t hints_seen = 0;
  // Hints dropped because their copy reached its owners.
  size_t handed_back = 0;
  // Hints dropped without a copy (the stand-in's copy was gone or replaced).
  size_t dropped_stale = 0;
  // Hints kept for a later pass (owner down, copy failed).
  size_t kept = 0;
};

// The hand-back half of hinted handoff (see docs/handoff.md), run by the web
// server: every `interval`, asks every node for the hints it holds and, for
// each hint whose owner is up again (probed with Health), copies the stand-in's
// copy to it (a Put with the hint's SHA-256, verified by the receiving node),
// then drops the hint, removing the stand-in's copy unless the stand-in is
// itself an owner of the key now. When the hinted node is no longer an owner
// of the key (the placement changed), the key's current owners get the copy
// instead. Idempotent, so any number of web servers may run it at once.
// Updates stats.hints_pending (the hints the last pass left in place) and
// stats.hints_handed_back.
class HintHandoff {
 public:
  // `cluster` and `stats` must outlive this object.
  HintHandoff(Cluster& cluster, RepairStats& stats, HintHandoffOptions options = {});
  // Stops the loop if it runs.
  ~HintHandoff();

  HintHandoff(const HintHandoff&) = delete;
  HintHandoff& operator=(const HintHandoff&) = delete;

  // Starts the background loop. Call at most once.
  void Start();
  // Stops the loop: a pass in progress ends after the hint it is handling.
  // Idempotent.
  void Stop();

  // One pass over every node's hints, on the caller's thread.
  HintHandoffPass RunOnce();

 private:
  // Hands one hint back; returns the outcome counted in `pass`.
  void HandBack(const ClusterNode& stand_in, const storage::Hint& hint,
                std::map<std::string, bool>& reachable, HintHandoffPass& pass);
  // Whether `node` answers Health (asked once per pass; marks the cluster).
  bool Reachable(const ClusterNode& node, std::map<std::string, bool>& reachable);
  bool stopping() const;

  Cluster& cluster_;
  RepairStats& stats_;
  const HintHandoffOptions options_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace streamgrid::repair
