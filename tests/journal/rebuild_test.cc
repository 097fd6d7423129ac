// Random operation sequences: after every step the kept KV view must equal its
// rebuild from snapshot + events, on the source and on a replica fed by Apply and
// InstallSnapshot. Seeds are printed so any failure can be replayed.
#include "base/rng.h"
#include "journal_fixture.h"

namespace cairn::journal {
namespace {

class RebuildTest : public JournalTest {
 protected:
  NewEvent RandomEvent(Rng& rng) {
    const std::string store = "s" + std::to_string(rng.Uniform(2));
    const std::string key = "k" + std::to_string(rng.Uniform(6));
    const std::string head = R"({"store":")" + store + R"(","key":")" + key + "\"";
    const std::string ttl =
        rng.Uniform(4) == 0 ? R"(,"ttl_ms":)" + std::to_string(rng.Uniform(50)) : "";
    const std::string field = "f" + std::to_string(rng.Uniform(3));
    switch (rng.Uniform(5)) {
      case 0:
        return {"kv.put", head + R"(,"value":{")" + field + R"(":)" +
                              std::to_string(rng.Uniform(100)) + "}" + ttl + "}"};
      case 1:
        return {"kv.patch",
                head + R"(,"value":{")" + field + R"(":)" +
                    (rng.Uniform(3) ? std::to_string(rng.Uniform(9)) : "null") + "}" +
                    ttl + "}"};
      case 2:
        return {"kv.del", head + "}"};
      case 3:
        return {"kv.put", head + R"(,"value":[1,"x"])" + ttl + "}"};
      default:
        return {"other", "opaque"};
    }
  }
};

TEST_F(RebuildTest, RandomOperationsKeepRebuildEqualToTheKeptView) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Rng rng(seed);
    auto a = Open("a" + std::to_string(seed), {"d1"});
    auto b = Open("b" + std::to_string(seed), {});
    for (int step = 0; step < 60; ++step) {
      std::vector<NewEvent> batch;
      for (uint64_t n = 1 + rng.Uniform(4); n > 0; --n) batch.push_back(RandomEvent(rng));
      ASSERT_OK(a->Append("d1", batch));
      clock_.Advance(static_cast<int64_t>(rng.Uniform(20'000)));
      if (rng.Uniform(8) == 0) ASSERT_OK(a->Snapshot("d1"));
      const bool b_holds = b->Stream("d1").ok();
      if (rng.Uniform(4) == 0) {
        // Retention with b as a's one follower: what b holds may go at a.
        ASSERT_OK(a->Trim("d1", b_holds ? b->Stream("d1")->last : 0));
      }
      if (rng.Uniform(3) == 0) {
        // Bring b up to date: a new b from a's snapshot when a has one, then
        // events (a still stores every event b lacks).
        if (!b_holds && a->Stream("d1")->snapshot > 0 && seed % 2 == 0) {
          ASSERT_OK(b->InstallSnapshot(CertOf("d1"), *a->ReadSnapshot("d1")));
        }
        uint64_t next = b->Stream("d1").ok() ? b->Stream("d1")->last + 1 : 1;
        ASSERT_GE(next, a->Stream("d1")->first);
        ASSERT_OK(b->Apply("d1", CertOf("d1"), All(*a, "d1", next)));
        // a's snapshot, now at or below b's head (the views agree only with the
        // same snapshot: it drops expired entries).
        if (a->Stream("d1")->snapshot > b->Stream("d1")->snapshot) {
          ASSERT_OK(b->InstallSnapshot("", *a->ReadSnapshot("d1")));
        }
        ASSERT_EQ(*b->RebuildView("d1"), *b->KeptView("d1"));
        if (rng.Uniform(2) == 0) ASSERT_OK(b->Trim("d1", UINT64_MAX));
        ASSERT_EQ(*b->KeptView("d1"), *a->KeptView("d1"));
        ASSERT_OK(b->Verify("d1"));
      }
      ASSERT_EQ(*a->RebuildView("d1"), *a->KeptView("d1")) << "step " << step;
    }
    ASSERT_OK(a->Verify("d1"));
    ASSERT_EQ(*a->RebuildView("d1"), *a->KeptView("d1"));
  }
}

}  // namespace
}  // namespace cairn::journal
