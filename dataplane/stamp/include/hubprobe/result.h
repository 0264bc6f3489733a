// SPDX-License-Identifier: Apache-2.0
// Errors as values for everything that runs after start-up (see docs/architecture.md).
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace hubprobe {

/// An error: an errno-style code (0 when none applies) and a message for operators.
struct Error {
  int code = 0;
  std::string message;
};

inline Error make_error(std::string message, int code = 0) { return Error{code, std::move(message)}; }

/// The error of a failed system call: "WHAT: strerror(code)", with errno as the code unless given.
inline Error errno_error(const std::string& what, int code = errno) {
  return make_error(what + ": " + std::strerror(code), code);
}

/// Either a value or an Error. Small on purpose: the subset of C++23 std::expected we use.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool failed_ = false;
};

}  // namespace hubprobe
