#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <type_traits>
#include <utility>

namespace streamgrid::http {

// Runs the blocking call `fn` on `pool` and resumes the calling coroutine on its
// own executor with the result. This is how request handlers call the service
// layer, whose calls may block on disk or network. `fn` must not throw.
template <typename Fn>
boost::asio::awaitable<std::invoke_result_t<Fn>> Offload(boost::asio::thread_pool& pool, Fn fn) {
  using Result = std::invoke_result_t<Fn>;
  static_assert(!std::is_void_v<Result>, "return a Status instead of void");
  auto initiate = [&pool](auto handler, Fn fn) {
    boost::asio::post(pool, [handler = std::move(handler), fn = std::move(fn)]() mutable {
      Result result = fn();
      auto executor = boost::asio::get_associated_executor(handler);
      boost::asio::dispatch(executor,
                            [handler = std::move(handler), result = std::move(result)]() mutable {
                              handler(std::move(result));
                            });
    });
  };
  co_return co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&,
                                                 void(Result)>(initiate, boost::asio::use_awaitable,
                                                               std::move(fn));
}

}  // namespace streamgrid::http
