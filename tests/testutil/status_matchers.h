// ASSERT_OK / EXPECT_OK for Status and Result<T>, printing the error on failure.
#pragma once

#include <gtest/gtest.h>

#include "base/result.h"

namespace cairn::testutil {

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

}  // namespace cairn::testutil

#define ASSERT_OK(expr)                                                   \
  do {                                                                    \
    const ::cairn::Status cairn_st_ = ::cairn::testutil::StatusOf(expr);  \
    ASSERT_TRUE(cairn_st_.ok()) << #expr << ": " << cairn_st_.ToString(); \
  } while (0)
#define EXPECT_OK(expr)                                                   \
  do {                                                                    \
    const ::cairn::Status cairn_st_ = ::cairn::testutil::StatusOf(expr);  \
    EXPECT_TRUE(cairn_st_.ok()) << #expr << ": " << cairn_st_.ToString(); \
  } while (0)
