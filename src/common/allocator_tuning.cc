#include "common/allocator_tuning.h"

#include <malloc.h>

namespace streamgrid {

bool TuneAllocatorForStreaming(const StreamingAllocatorOptions& options) {
  // Setting either disables glibc's dynamic thresholds, which otherwise
  // follow the sizes freed last and left a storage node mapping, faulting in
  // and unmapping about a MiB per received chunk.
  const bool mmap_ok = mallopt(M_MMAP_THRESHOLD, static_cast<int>(options.mmap_threshold)) == 1;
  const bool trim_ok = mallopt(M_TRIM_THRESHOLD, static_cast<int>(options.trim_threshold)) == 1;
  const bool arenas_ok = mallopt(M_ARENA_MAX, options.max_arenas) == 1;
  return mmap_ok && trim_ok && arenas_ok;
}

}  // namespace streamgrid
