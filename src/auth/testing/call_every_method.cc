#include "auth/testing/call_every_method.h"

#include "absl/strings/str_cat.h"
#include "grpcpp/client_context.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "gtest/gtest.h"

namespace streamgrid::auth::testing {
namespace {

// Waits for the one operation in flight on `cq`; whether it succeeded.
bool Await(grpc::CompletionQueue& cq) {
  void* tag = nullptr;
  bool ok = false;
  return cq.Next(&tag, &ok) && ok;
}

}  // namespace

std::vector<MethodCall> CallEveryMethod(
    const std::shared_ptr<grpc::Channel>& channel,
    const google::protobuf::ServiceDescriptor& service,
    const std::vector<std::pair<std::string, std::string>>& metadata,
    std::chrono::milliseconds timeout) {
  std::vector<MethodCall> calls;
  grpc::GenericStub stub(channel);
  for (int i = 0; i < service.method_count(); ++i) {
    MethodCall call{.method =
                        absl::StrCat("/", service.full_name(), "/", service.method(i)->name())};
    grpc::CompletionQueue cq;
    {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + timeout);
      for (const auto& [key, value] : metadata) context.AddMetadata(key, value);
      // A bidirectional generic call fits every kind of method: the server
      // reads at most one message (the empty one) for unary ones.
      std::unique_ptr<grpc::GenericClientAsyncReaderWriter> stream =
          stub.PrepareCall(&context, call.method, &cq);
      stream->StartCall(nullptr);
      Await(cq);
      grpc::Slice empty("");
      grpc::ByteBuffer request(&empty, 1);
      stream->Write(request, nullptr);
      Await(cq);
      stream->WritesDone(nullptr);
      Await(cq);
      grpc::ByteBuffer response;
      do {
        stream->Read(&response, nullptr);
      } while (Await(cq));
      stream->Finish(&call.status, nullptr);
      Await(cq);
    }
    cq.Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (cq.Next(&tag, &ok)) {
    }
    calls.push_back(std::move(call));
  }
  return calls;
}

void ExpectEveryMethodRequiresToken(const std::shared_ptr<grpc::Channel>& channel,
                                    const google::protobuf::ServiceDescriptor& service,
                                    const std::string& token) {
  using Metadata = std::vector<std::pair<std::string, std::string>>;
  std::string near_miss = token;
  near_miss.back() ^= 0x20;
  for (const Metadata& metadata :
       std::vector<Metadata>{{},
                             {{"authorization", "Bearer " + near_miss}},
                             {{"authorization", "Bearer " + token + "-and-more"}},
                             {{"authorization", token}}}) {
    for (const MethodCall& call : CallEveryMethod(channel, service, metadata)) {
      EXPECT_EQ(call.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << call.method << " with " << ::testing::PrintToString(metadata) << ": "
          << call.status.error_message();
    }
  }
  // The right token passes the check (the empty requests are then refused
  // for what they are, or answered).
  for (const MethodCall& call :
       CallEveryMethod(channel, service, {{"authorization", "Bearer " + token}})) {
    EXPECT_NE(call.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << call.method << ": " << call.status.error_message();
  }
}

}  // namespace streamgrid::auth::testing
