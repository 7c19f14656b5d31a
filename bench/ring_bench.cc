// Placement ring benchmarks: key -> replica set lookups (hash + table) beside
// the raw SHA-256 they are built on, plus the cost of building and changing a
// table. Before the timings, a report of balance and movement figures on
// 1,000,000 keys is printed once (pass --report_only to stop there).

#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ring/placement.h"

namespace streamgrid {
namespace {

std::vector<RingNode> EqualNodes(int count) {
  std::vector<RingNode> nodes;
  for (int i = 0; i < count; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "node-%02d", i);
    nodes.push_back({id, "", 1.0});
  }
  return nodes;
}

// Keys shaped like stored content: a 26-character video id and a segment name.
std::vector<std::string> MakeKeys(int count) {
  std::vector<std::string> keys;
  keys.reserve(count);
  char key[64];
  for (int i = 0; i < count; ++i) {
    unsigned long long video = static_cast<unsigned long long>(i / 50) * 0x9e3779b97f4a7c15ULL;
    std::snprintf(key, sizeof key, "%026llx/chunk-%d-%05d.m4s", video, i % 3, i % 50);
    keys.push_back(key);
  }
  return keys;
}

const std::vector<std::string>& BenchKeys() {
  static const std::vector<std::string>* keys = new std::vector<std::string>(MakeKeys(4096));
  return *keys;
}

// ---- Lookups -------------------------------------------------------------

void BM_Lookup(benchmark::State& state) {
  Placement placement =
      *Placement::Create(EqualNodes(static_cast<int>(state.range(0))), state.range(1));
  const std::vector<std::string>& keys = BenchKeys();
  size_t i = 0;
  for (auto _ : state) {
    std::span<const NodeIndex> replicas = placement.ReplicasFor(keys[i++ & 4095]);
    benchmark::DoNotOptimize(replicas.data());
  }
}
BENCHMARK(BM_Lookup)->ArgNames({"nodes", "R"})->ArgsProduct({{3, 10, 20}, {1, 2, 3}});

void BM_LookupPrecomputedPosition(benchmark::State& state) {
  Placement placement = *Placement::Create(EqualNodes(static_cast<int>(state.range(0))), 3);
  std::vector<uint64_t> positions;
  for (const std::string& key : BenchKeys()) positions.push_back(Placement::KeyPosition(key));
  size_t i = 0;
  for (auto _ : state) {
    std::span<const NodeIndex> replicas = placement.ReplicasForPosition(positions[i++ & 4095]);
    benchmark::DoNotOptimize(replicas.data());
  }
}
BENCHMARK(BM_LookupPrecomputedPosition)->ArgName("nodes")->Arg(3)->Arg(20);

void BM_KeyPosition(benchmark::State& state) {
  const std::vector<std::string>& keys = BenchKeys();
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(Placement::KeyPosition(keys[i++ & 4095]));
}
BENCHMARK(BM_KeyPosition);

void BM_KeyPositionTwoParts(benchmark::State& state) {
  const std::vector<std::string>& keys = BenchKeys();
  size_t i = 0;
  for (auto _ : state) {
    const std::string& key = keys[i++ & 4095];
    benchmark::DoNotOptimize(Placement::KeyPosition(std::string_view(key).substr(0, 26),
                                                    std::string_view(key).substr(27)));
  }
}
BENCHMARK(BM_KeyPositionTwoParts);

// ---- The raw hash, for reference ----------------------------------------

void BM_Sha256OneShot(benchmark::State& state) {
  const std::vector<std::string>& keys = BenchKeys();
  unsigned char digest[SHA256_DIGEST_LENGTH];
  size_t i = 0;
  for (auto _ : state) {
    const std::string& key = keys[i++ & 4095];
    SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest);
    benchmark::DoNotOptimize(digest);
  }
}
BENCHMARK(BM_Sha256OneShot);

void BM_Sha256EvpNewContextPerKey(benchmark::State& state) {
  const std::vector<std::string>& keys = BenchKeys();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  size_t i = 0;
  for (auto _ : state) {
    const std::string& key = keys[i++ & 4095];
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    EVP_DigestUpdate(ctx, key.data(), key.size());
    EVP_DigestFinal_ex(ctx, digest, &length);
    EVP_MD_CTX_free(ctx);
    benchmark::DoNotOptimize(digest);
  }
}
BENCHMARK(BM_Sha256EvpNewContextPerKey);

// Reused context, but EVP_sha256() (implicitly fetched on every init).
void BM_Sha256EvpReusedContext(benchmark::State& state) {
  const std::vector<std::string>& keys = BenchKeys();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t i = 0;
  for (auto _ : state) {
    const std::string& key = keys[i++ & 4095];
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    EVP_DigestUpdate(ctx, key.data(), key.size());
    EVP_DigestFinal_ex(ctx, digest, &length);
    benchmark::DoNotOptimize(digest);
  }
  EVP_MD_CTX_free(ctx);
}
BENCHMARK(BM_Sha256EvpReusedContext);

// Reused context and an explicitly fetched EVP_MD: what KeyPosition does.
void BM_Sha256EvpReusedContextFetchedMd(benchmark::State& state) {
  const std::vector<std::string>& keys = BenchKeys();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t i = 0;
  for (auto _ : state) {
    const std::string& key = keys[i++ & 4095];
    EVP_DigestInit_ex2(ctx, md, nullptr);
    EVP_DigestUpdate(ctx, key.data(), key.size());
    EVP_DigestFinal_ex(ctx, digest, &length);
    benchmark::DoNotOptimize(digest);
  }
  EVP_MD_CTX_free(ctx);
  EVP_MD_free(md);
}
BENCHMARK(BM_Sha256EvpReusedContextFetchedMd);

// ---- Building and changing tables ---------------------------------------

void BM_Create(benchmark::State& state) {
  std::vector<RingNode> nodes = EqualNodes(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(Placement::Create(nodes, 3));
}
BENCHMARK(BM_Create)->ArgName("nodes")->Arg(3)->Arg(20)->Arg(100)->Unit(benchmark::kMicrosecond);

void BM_AddNode(benchmark::State& state) {
  Placement placement = *Placement::Create(EqualNodes(static_cast<int>(state.range(0))), 3);
  for (auto _ : state) benchmark::DoNotOptimize(placement.WithNodeAdded({"new-node", "", 1.0}));
}
BENCHMARK(BM_AddNode)->ArgName("nodes")->Arg(3)->Arg(20)->Arg(100)->Unit(benchmark::kMicrosecond);

void BM_RemoveNode(benchmark::State& state) {
  Placement placement = *Placement::Create(EqualNodes(static_cast<int>(state.range(0))), 3);
  for (auto _ : state) benchmark::DoNotOptimize(placement.WithNodeRemoved("node-01"));
}
BENCHMARK(BM_RemoveNode)
    ->ArgName("nodes")
    ->Arg(4)
    ->Arg(20)
    ->Arg(100)
    ->Unit(benchmark::kMicrosecond);

// ---- Report ---------------------------------------------------------------

struct Loads {
  std::vector<int64_t> replicas;
  std::vector<int64_t> primaries;
};

Loads KeyLoads(const Placement& placement, const std::vector<uint64_t>& positions) {
  Loads loads{std::vector<int64_t>(placement.nodes().size()),
              std::vector<int64_t>(placement.nodes().size())};
  for (uint64_t position : positions) {
    std::span<const NodeIndex> row = placement.ReplicasForPosition(position);
    ++loads.primaries[row[0]];
    for (NodeIndex n : row) ++loads.replicas[n];
  }
  return loads;
}

double MaxOverMean(const std::vector<int64_t>& loads) {
  int64_t sum = 0;
  for (int64_t load : loads) sum += load;
  return *std::max_element(loads.begin(), loads.end()) / (static_cast<double>(sum) / loads.size());
}

// Copies (key replicas) whose node set changed, as a fraction of all copies.
double MovedFraction(const Placement& before, const Placement& after,
                     const std::vector<uint64_t>& positions) {
  int64_t moved = 0;
  for (uint64_t position : positions) {
    std::span<const NodeIndex> old_row = before.ReplicasForPosition(position);
    for (NodeIndex n : after.ReplicasForPosition(position)) {
      const std::string& id = after.node(n).id;
      bool held = std::any_of(old_row.begin(), old_row.end(),
                              [&](NodeIndex o) { return before.node(o).id == id; });
      if (!held) ++moved;
    }
  }
  return static_cast<double>(moved) /
         (static_cast<double>(positions.size()) * before.replication_factor());
}

void PrintReport() {
  std::vector<uint64_t> positions;
  for (const std::string& key : MakeKeys(1'000'000))
    positions.push_back(Placement::KeyPosition(key));

  std::printf("Balance on 1,000,000 keys, equal nodes: most-loaded / mean (copies; primaries)\n");
  std::printf("%5s %18s %18s %18s\n", "nodes", "R=1", "R=2", "R=3");
  double worst[3] = {0, 0, 0};
  for (int n = 3; n <= 20; ++n) {
    std::printf("%5d", n);
    for (int r = 1; r <= 3; ++r) {
      Loads loads = KeyLoads(*Placement::Create(EqualNodes(n), r), positions);
      double copies = MaxOverMean(loads.replicas);
      double primaries = MaxOverMean(loads.primaries);
      worst[r - 1] = std::max({worst[r - 1], copies, primaries});
      std::printf("     %.4f; %.4f", copies, primaries);
    }
    std::printf("\n");
  }
  std::printf("worst: R=1 %.4f, R=2 %.4f, R=3 %.4f\n\n", worst[0], worst[1], worst[2]);

  std::printf("Movement on 1,000,000 keys: moved copies / ideal (add: 1/(N+1), remove: 1/N)\n");
  std::printf("%5s %12s %12s %12s %12s\n", "N", "add R=1", "add R=2", "remove R=1", "remove R=2");
  for (int n : {3, 4, 5, 7, 10, 13, 16, 19, 20}) {
    std::printf("%5d", n);
    for (int r : {1, 2}) {
      Placement before = *Placement::Create(EqualNodes(n), r);
      Placement after = *before.WithNodeAdded({"new-node", "", 1.0});
      std::printf(" %12.4f", MovedFraction(before, after, positions) * (n + 1));
    }
    for (int r : {1, 2}) {
      if (n <= r) {
        std::printf(" %12s", "-");
        continue;
      }
      Placement before = *Placement::Create(EqualNodes(n), r);
      Placement after = *before.WithNodeRemoved(before.node(n / 2).id);
      std::printf(" %12.4f", MovedFraction(before, after, positions) * n);
    }
    std::printf("\n");
  }

  std::vector<RingNode> weighted = EqualNodes(3);
  weighted[2].weight = 2;
  std::printf("\nWeights 1, 1, 2: copies of the weight-2 node / a weight-1 node\n");
  for (int r : {1, 2}) {
    Loads loads = KeyLoads(*Placement::Create(weighted, r), positions);
    std::printf("  R=%d: %.4f (primaries %.4f)\n", r,
                static_cast<double>(loads.replicas[2]) / loads.replicas[0],
                static_cast<double>(loads.primaries[2]) / loads.primaries[0]);
  }
  std::printf("\n");
  std::fflush(stdout);
}

}  // namespace
}  // namespace streamgrid

int main(int argc, char** argv) {
  bool report_only = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--report_only") == 0) report_only = true;
  }
  benchmark::Initialize(&argc, argv);
  streamgrid::PrintReport();
  if (report_only) return 0;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
