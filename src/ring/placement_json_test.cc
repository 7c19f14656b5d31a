#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "ring/placement.h"

namespace streamgrid {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

// A placement with history: uneven weights, odd addresses, several changes.
Placement Evolved() {
  std::vector<RingNode> nodes = {
      {"storage-b", "10.0.0.2:7000", 1.0},
      {"storage-a", "[fe80::1]:7000", 0.1 + 0.2},  // not exactly representable
      {"storage-c", "host \"quoted\" \xc3\xa9:7000", 2.5},
  };
  Placement placement = *Placement::Create(nodes, 2);
  placement = *placement.WithNodeAdded({"storage-d", "10.0.0.4:7000", 1.25});
  placement = *placement.WithNodeRemoved("storage-b");
  placement = *placement.WithNodeWeight("storage-a", 1.0 / 3);
  return *placement.WithNodeAdded({"storage-0", "10.0.0.9:7000", 1.0});
}

Json Parsed(const Placement& placement) { return Json::parse(placement.ToJson()); }

absl::StatusCode FromJsonCode(const Json& json) {
  return Placement::FromJson(json.dump()).status().code();
}

TEST(PlacementJsonTest, RoundTripIsIdentical) {
  Placement original = Evolved();
  absl::StatusOr<Placement> reloaded = Placement::FromJson(original.ToJson());
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_TRUE(*reloaded == original);
  EXPECT_EQ(reloaded->version(), original.version());
  EXPECT_EQ(reloaded->version(), 5u);
  EXPECT_EQ(reloaded->nodes(), original.nodes());
  EXPECT_EQ(reloaded->ToJson(), original.ToJson());
  for (uint32_t p = 0; p < Placement::kPartitionCount; ++p) {
    std::span<const NodeIndex> a = original.ReplicasForPartition(p);
    std::span<const NodeIndex> b = reloaded->ReplicasForPartition(p);
    ASSERT_TRUE(std::equal(a.begin(), a.end(), b.begin(), b.end())) << "partition " << p;
  }
}

TEST(PlacementJsonTest, ChangesAfterReloadMatchChangesWithoutIt) {
  Placement original = Evolved();
  Placement reloaded = *Placement::FromJson(original.ToJson());
  EXPECT_TRUE(*reloaded.WithNodeAdded({"storage-e", "", 1}) ==
              *original.WithNodeAdded({"storage-e", "", 1}));
  EXPECT_TRUE(*reloaded.WithNodeRemoved("storage-c") == *original.WithNodeRemoved("storage-c"));
}

TEST(PlacementJsonTest, DocumentShape) {
  Json json = Parsed(Evolved());
  EXPECT_EQ(json["version"], 5);
  EXPECT_EQ(json["replication_factor"], 2);
  EXPECT_EQ(json["partition_bits"], Placement::kPartitionBits);
  ASSERT_EQ(json["nodes"].size(), 4u);
  EXPECT_EQ(json["nodes"][0]["id"], "storage-0");
  EXPECT_EQ(json["nodes"][1]["address"], "[fe80::1]:7000");
  ASSERT_EQ(json["replicas"].size(), 2u);
  EXPECT_EQ(json["replicas"][0].size(), Placement::kPartitionCount);
}

TEST(PlacementJsonTest, NodesInAnyOrderAreRenumbered) {
  Placement original = Evolved();
  Json json = Parsed(original);
  // Reverse the node list and rewrite every index to match.
  const size_t n = json["nodes"].size();
  Json reversed = Json::array();
  for (size_t i = n; i-- > 0;) reversed.push_back(json["nodes"][i]);
  json["nodes"] = reversed;
  for (Json& column : json["replicas"]) {
    for (Json& entry : column) entry = n - 1 - entry.get<size_t>();
  }
  absl::StatusOr<Placement> reloaded = Placement::FromJson(json.dump());
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_TRUE(*reloaded == original);
}

TEST(PlacementJsonTest, ReorderedRowHasNoDiff) {
  Placement original = Evolved();
  Json json = Parsed(original);
  std::swap(json["replicas"][0][7], json["replicas"][1][7]);
  absl::StatusOr<Placement> swapped = Placement::FromJson(json.dump());
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  EXPECT_FALSE(*swapped == original);
  EXPECT_TRUE(Diff(original, *swapped).empty());
}

TEST(PlacementJsonTest, RejectsMalformedOrInconsistentState) {
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(Placement::FromJson("").status().code(), kInvalid);
  EXPECT_EQ(Placement::FromJson("{").status().code(), kInvalid);
  EXPECT_EQ(Placement::FromJson("[]").status().code(), kInvalid);

  const Json good = Parsed(Evolved());
  auto mutated = [&](auto&& change) {
    Json json = good;
    change(json);
    return FromJsonCode(json);
  };
  EXPECT_EQ(mutated([](Json& j) { j.erase("version"); }), kInvalid);
  EXPECT_EQ(mutated([](Json& j) { j["version"] = 0; }), kInvalid);
  EXPECT_EQ(mutated([](Json& j) { j["version"] = "5"; }), kInvalid);
  EXPECT_EQ(mutated([](Json& j) { j["replication_factor"] = 0; }), kInvalid);
  EXPECT_EQ(mutated([](Json& j) { j["replication_factor"] = 3; }), kInvalid);
  EXPECT_EQ(mutated([](Json& j) { j["partition_bits"] = 16; }), kInvalid);
  EXPECT_EQ(mutated([](Json& j) { j["nodes"] = Json::object(); }), kInvalid);
  EXPECT_EQ(mutated([](Json& j) { j["nodes"][0].erase("address"); }), kInvalid);
  EXPECT_EQ(mutated([](Json& j) { j["nodes"][0]["weight"] = -1; }), kInvalid);
  EXPECT_EQ(mutated([](Json& j) { j["nodes"][0]["id"] = j["nodes"][1]["id"]; }), kInvalid);
  EXPECT_EQ(mutated([](Json& j) { j["replicas"][1] = Json::array(); }), kInvalid);
  EXPECT_EQ(mutated([](Json& j) { j["replicas"][0][5] = 4; }), kInvalid);
  EXPECT_EQ(mutated([](Json& j) { j["replicas"][0][5] = -1; }), kInvalid);
  EXPECT_EQ(mutated([](Json& j) { j["replicas"][0][5] = j["replicas"][1][5]; }), kInvalid);
  EXPECT_EQ(mutated([](Json& j) { j["replicas"].erase(1); }), kInvalid);
  // Two nodes left for R = 2 is valid; dropping one makes indexes dangle.
  EXPECT_EQ(mutated([](Json& j) { j["nodes"].erase(3); }), kInvalid);

  absl::Status status = Placement::FromJson(R"({"version": 1})").status();
  EXPECT_THAT(std::string(status.message()), HasSubstr("placement JSON"));
}

}  // namespace
}  // namespace streamgrid
