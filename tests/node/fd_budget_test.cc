#include "node/fd_budget.h"

#include <gtest/gtest.h>

namespace cairn::node {
namespace {

size_t Sum(const FdBudget& b) {
  return b.leveldb + b.control_clients + 2 + b.reserve + b.connections;
}

TEST(FdBudgetTest, TheCommonLimitLeavesLevelDbAndTheControlSocketTheirShare) {
  FdBudget b = ShareFds(1024);
  EXPECT_EQ(b.leveldb, 256u);
  EXPECT_EQ(b.control_clients, 128u);
  EXPECT_EQ(Sum(b), 1024u);
  EXPECT_GT(b.connections, 500u);
}

TEST(FdBudgetTest, TheSmallestLimitStillFitsPeers) {
  FdBudget b = ShareFds(kMinFdLimit);
  EXPECT_EQ(b.leveldb, 64u);
  EXPECT_EQ(b.control_clients, 32u);
  EXPECT_EQ(Sum(b), kMinFdLimit);
  EXPECT_GE(b.connections, 64u);
}

TEST(FdBudgetTest, LargeLimitsGoToPeers) {
  FdBudget b = ShareFds(65536);
  EXPECT_EQ(b.leveldb, 1000u);
  EXPECT_EQ(b.control_clients, 256u);
  EXPECT_EQ(Sum(b), 65536u);
}

}  // namespace
}  // namespace cairn::node
