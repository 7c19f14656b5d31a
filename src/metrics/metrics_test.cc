#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metrics/exposition.h"
#include "metrics/gauges.h"
#include "metrics/grpc_client_metrics.h"
#include "metrics/grpc_server_metrics.h"
#include "metrics/http_metrics.h"

namespace streamgrid::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

http::RequestRecord Answered(std::string_view route, http::Verb method, unsigned status,
                             uint64_t bytes, std::chrono::milliseconds elapsed) {
  return {.method = method,
          .route = route,
          .target = "/x",
          .request_id = "r",
          .peer = "127.0.0.1",
          .status = status,
          .body_bytes = bytes,
          .completed = true,
          .elapsed = elapsed};
}

TEST(HttpMetricsTest, CountsRequestsByRouteMethodAndCode) {
  prometheus::Registry registry;
  HttpMetrics metrics(registry);
  using std::chrono::milliseconds;
  metrics.OnRequest(Answered("/api/videos", http::Verb::get, 200, 100, milliseconds(3)));
  metrics.OnRequest(Answered("/api/videos", http::Verb::get, 200, 50, milliseconds(30)));
  metrics.OnRequest(Answered("/api/videos", http::Verb::post, 415, 10, milliseconds(1)));
  metrics.OnRequest(Answered("", http::Verb::get, 404, 20, milliseconds(1)));

  const std::string text = MetricsText({&registry});
  EXPECT_THAT(text, HasSubstr("# TYPE streamgrid_http_requests_total counter"));
  EXPECT_THAT(text,
              HasSubstr("streamgrid_http_requests_total{code=\"200\",method=\"GET\",route=\"/api/"
                        "videos\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("streamgrid_http_requests_total{code=\"415\",method=\"POST\","
                              "route=\"/api/videos\"} 1\n"));
  // Paths no route matched share one series, whatever they were.
  EXPECT_THAT(text, HasSubstr("streamgrid_http_requests_total{code=\"404\",method=\"GET\","
                              "route=\"none\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("streamgrid_http_response_bytes_total{route=\"/api/videos\"} 160\n"));
  // 3 ms and 30 ms: one below 5 ms, both below 50 ms, their sum in seconds.
  EXPECT_THAT(text, HasSubstr("streamgrid_http_request_duration_seconds_bucket{method=\"GET\","
                              "route=\"/api/videos\",le=\"0.005\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("streamgrid_http_request_duration_seconds_bucket{method=\"GET\","
                              "route=\"/api/videos\",le=\"0.05\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("streamgrid_http_request_duration_seconds_count{method=\"GET\","
                              "route=\"/api/videos\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("streamgrid_http_request_duration_seconds_sum{method=\"GET\","
                              "route=\"/api/videos\"} 0.033"));
}

TEST(GaugesTest, ReadsEachValueWhenCollected) {
  Gauges gauges;
  std::atomic<int> open{3};
  gauges.Add("streamgrid_test_open", "Open things.", {}, [&open] { return open.load(); });
  gauges.Add("streamgrid_test_bytes", "Bytes by node.", {{"node", "a"}}, [] { return 10.0; });
  gauges.Add("streamgrid_test_bytes", "ignored: the first help stays", {{"node", "b"}},
             [] { return 20.0; });
  std::string text = MetricsText({&gauges});
  EXPECT_THAT(text, HasSubstr("# HELP streamgrid_test_open Open things.\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE streamgrid_test_open gauge\n"));
  EXPECT_THAT(text, HasSubstr("streamgrid_test_open 3\n"));
  EXPECT_THAT(text, HasSubstr("streamgrid_test_bytes{node=\"a\"} 10\n"));
  EXPECT_THAT(text, HasSubstr("streamgrid_test_bytes{node=\"b\"} 20\n"));
  EXPECT_THAT(text, Not(HasSubstr("ignored")));
  open = 5;
  EXPECT_THAT(MetricsText({&gauges}), HasSubstr("streamgrid_test_open 5\n"));

  gauges.AddCounter("streamgrid_test_done_total", "Done.", {{"kind", "x"}}, [] { return 4.0; });
  text = MetricsText({&gauges});
  EXPECT_THAT(text, HasSubstr("# TYPE streamgrid_test_done_total counter\n"));
  EXPECT_THAT(text, HasSubstr("streamgrid_test_done_total{kind=\"x\"} 4\n"));
}

TEST(ExpositionTest, JoinsSeveralCollectables) {
  prometheus::Registry registry;
  HttpMetrics metrics(registry);
  metrics.OnRequest(Answered("/metrics", http::Verb::get, 200, 1, std::chrono::milliseconds(1)));
  Gauges gauges;
  gauges.Add("streamgrid_test_queue", "Queued.", {}, [] { return 7.0; });
  const std::string text = MetricsText({&registry, &gauges});
  EXPECT_THAT(text, HasSubstr("route=\"/metrics\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("streamgrid_test_queue 7\n"));
}

TEST(GrpcServerMetricsTest, CountsCallsByShortMethodNameAndCode) {
  prometheus::Registry registry;
  GrpcServerMetrics metrics(registry);
  metrics.Record("/streamgrid.storage.Storage/Put", grpc::StatusCode::OK, 0.002);
  metrics.Record("/streamgrid.storage.Storage/Put", grpc::StatusCode::OK, 0.2);
  metrics.Record("/streamgrid.storage.Storage/Put", grpc::StatusCode::DATA_LOSS, 0.001);
  metrics.Record("/streamgrid.storage.Storage/Stat", grpc::StatusCode::NOT_FOUND, 0.001);
  EXPECT_EQ(metrics.Interceptors().size(), 1u);
  const std::string text = MetricsText({&registry});
  EXPECT_THAT(text,
              HasSubstr("streamgrid_grpc_server_calls_total{code=\"OK\",method=\"Put\"} 2\n"));
  EXPECT_THAT(
      text, HasSubstr("streamgrid_grpc_server_calls_total{code=\"DATA_LOSS\",method=\"Put\"} 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr("streamgrid_grpc_server_calls_total{code=\"NOT_FOUND\",method=\"Stat\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("streamgrid_grpc_server_call_duration_seconds_count{method=\"Put\"} 3\n"));
}

TEST(GrpcClientMetricsTest, CountsCallsByNodeMethodAndCode) {
  prometheus::Registry registry;
  GrpcClientMetrics metrics(registry);
  metrics.Record("n1", "/streamgrid.storage.Storage/Get", grpc::StatusCode::OK, 0.002);
  metrics.Record("n1", "/streamgrid.storage.Storage/Get", grpc::StatusCode::UNAVAILABLE, 2);
  metrics.Record("n2", "/streamgrid.storage.Storage/Get", grpc::StatusCode::OK, 0.001);
  EXPECT_NE(metrics.InterceptorFor("n1"), nullptr);
  const std::string text = MetricsText({&registry});
  EXPECT_THAT(text, HasSubstr("streamgrid_storage_node_calls_total{code=\"OK\",method=\"Get\","
                              "node=\"n1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("streamgrid_storage_node_calls_total{code=\"UNAVAILABLE\","
                              "method=\"Get\",node=\"n1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("streamgrid_storage_node_calls_total{code=\"OK\",method=\"Get\","
                              "node=\"n2\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("streamgrid_storage_node_call_duration_seconds_count{method=\"Get\","
                              "node=\"n1\"} 2\n"));
}

}  // namespace
}  // namespace streamgrid::metrics
