#pragma once

#include <cstddef>

namespace streamgrid {

// glibc malloc settings for a process that streams large files through
// buffers of up to a few MiB (gRPC messages of 1 MiB chunks).
struct StreamingAllocatorOptions {
  // Allocations at least this large get their own mapping.
  size_t mmap_threshold = size_t{4} << 20;
  // Free memory at the top of a heap is returned to the kernel only beyond
  // this much.
  size_t trim_threshold = size_t{16} << 20;
  // Malloc arenas at most (each may keep up to trim_threshold idle).
  int max_arenas = 2;
};

// Keeps the buffers of streamed chunks in the heap instead of mapping and
// unmapping (and page-faulting in) fresh memory for each one: a storage node
// spent about half its CPU on those page faults while receiving an upload.
// Costs up to `trim_threshold` of idle heap per malloc arena. Call once at
// the start of main(), before threads start; returns false if glibc refused
// a setting (the process then runs with its defaults).
bool TuneAllocatorForStreaming(const StreamingAllocatorOptions& options = {});

}  // namespace streamgrid
