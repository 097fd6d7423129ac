// Durability against real crashes and real damage: a child process killed with
// SIGKILL mid-append, and flipped bits in LevelDB's files.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "base/rng.h"
#include "journal_fixture.h"

#ifndef CAIRN_CRASH_CHILD
#error "CAIRN_CRASH_CHILD must name the crash_child binary"
#endif

namespace cairn::journal {
namespace {

namespace fs = std::filesystem;

class DurabilityTest : public JournalTest {
 protected:
  // Runs the child until it has acknowledged at least `acks` appends (plus a
  // seeded random number more), kills it, and returns the highest acked seq.
  uint64_t RunAndKill(const std::string& path, int acks, Rng& rng) {
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      dup2(fds[1], 1);
      close(fds[0]);
      execl(CAIRN_CRASH_CHILD, "crash_child", path.c_str(), dir_.File("ca.pem").c_str(),
            dir_.File("d1.crt").c_str(), dir_.File("d1.key").c_str(), nullptr);
      _exit(127);
    }
    close(fds[1]);
    FILE* in = fdopen(fds[0], "r");
    uint64_t max_acked = 0;
    const int target = acks + static_cast<int>(rng.Uniform(static_cast<uint64_t>(acks)));
    unsigned long long first, last;
    for (int n = 0; n < target && std::fscanf(in, "%llu %llu", &first, &last) == 2; ++n) {
      max_acked = std::max<uint64_t>(max_acked, last);
    }
    kill(pid, SIGKILL);
    // Lines already written before the kill were acknowledged too.
    while (std::fscanf(in, "%llu %llu", &first, &last) == 2) {
      max_acked = std::max<uint64_t>(max_acked, last);
    }
    std::fclose(in);
    int wstatus = 0;
    waitpid(pid, &wstatus, 0);
    EXPECT_TRUE(WIFSIGNALED(wstatus))
        << "child exited early with " << WEXITSTATUS(wstatus);
    return max_acked;
  }

  void WriteKeys() {
    testutil::Issued d1 = pki_.Issue("d1");
    testutil::TestPki::WriteFile(dir_.File("ca.pem"), pki_.ca_cert_pem());
    testutil::TestPki::WriteFile(dir_.File("d1.crt"), d1.cert_pem);
    testutil::TestPki::WriteFile(dir_.File("d1.key"), d1.key_pem);
  }

  std::unique_ptr<Journal> OpenAsChild(const std::string& path) {
    auto signer = DeviceSigner::FromFiles(dir_.File("d1.crt"), dir_.File("d1.key"), *ca_);
    CHECK(signer.ok());
    JournalOptions o;
    o.store.path = path;
    o.ca = ca_;
    o.sources.push_back(*signer);
    return OpenWith(std::move(o));
  }

  // Anywhere but the first and last 16 bytes.
  static void FlipBit(const fs::path& file, Rng& rng) {
    FlipBitBelow(file, fs::file_size(file) - 16, rng);
  }

  static void FlipBitBelow(const fs::path& file, uint64_t end, Rng& rng) {
    CHECK(end > 64);
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    const auto at = static_cast<std::streamoff>(16 + rng.Uniform(end - 16));
    f.seekg(at);
    char c;
    f.get(c);
    c = static_cast<char>(c ^ (1 << rng.Uniform(8)));
    f.seekp(at);
    f.put(c);
  }

  static fs::path OnlyFile(const std::string& dir, const std::string& ext) {
    fs::path found;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.path().extension() == ext && fs::file_size(e.path()) > 0) found = e.path();
    }
    CHECK(!found.empty()) << "no " << ext << " file in " << dir;
    return found;
  }
};

TEST_F(DurabilityTest, SigkillMidAppendLeavesAGapFreePrefixWithEveryAck) {
  WriteKeys();
  const std::string path = dir_.File("store");
  Rng rng(20261121);
  uint64_t acked = 0;
  for (int round = 0; round < 6; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    acked = std::max(acked, RunAndKill(path, 40, rng));
    auto j = OpenAsChild(path);
    auto info = j->Stream("d1");
    ASSERT_OK(info);
    EXPECT_GE(info->last, acked) << "an acknowledged append was lost";
    EXPECT_EQ(All(*j, "d1").size(), info->last) << "the stream has a gap";
    ASSERT_OK(j->Verify("d1"));
  }
  EXPECT_GT(acked, 100u);
}

TEST_F(DurabilityTest, AFlippedBitInTheLogStopsStartUpNamingTheDamage) {
  const std::string path = dir_.File("store");
  {
    auto j = Open("store", {"d1"});
    for (int i = 0; i < 20; ++i)
      ASSERT_OK(j->Append("d1", Events(10, "note", "payload-")));
  }
  Rng rng(7);
  FlipBit(OnlyFile(path, ".log"), rng);
  auto j = Journal::Open(Options("store", {"d1"}));
  ASSERT_FALSE(j.ok()) << "a damaged log was opened silently";
  EXPECT_TRUE(j.status().IsCorruption()) << j.status().ToString();
  EXPECT_NE(j.status().message().find("damaged"), std::string::npos)
      << j.status().ToString();
}

// LevelDB reads a table block only when asked for it; the journal reads them all
// at open, so damage in a table stops start-up instead of waiting to be served.
TEST_F(DurabilityTest, AFlippedBitInATableDataBlockStopsStartUpNamingTheDamage) {
  const std::string path = dir_.File("store");
  {
    auto j = Open("store", {"d1"});
    for (int i = 0; i < 20; ++i)
      ASSERT_OK(j->Append("d1", Events(10, "note", "payload-")));
  }
  { auto j = Open("store", {"d1"}); }  // reopening turns the log into a table
  const fs::path table = OnlyFile(path, ".ldb");
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    fs::path copy = dir_.File("copy-" + std::to_string(seed));
    fs::copy(path, copy, fs::copy_options::recursive);
    Rng rng(seed);
    // Data blocks come first in a table; the filter, index and footer follow.
    FlipBitBelow(copy / table.filename(), fs::file_size(table) / 2, rng);
    JournalOptions o = Options("store", {"d1"});
    o.store.path = copy.string();
    auto j = Journal::Open(std::move(o));
    ASSERT_FALSE(j.ok()) << "a damaged table was opened silently";
    EXPECT_TRUE(j.status().IsCorruption()) << j.status().ToString();
    EXPECT_NE(j.status().message().find("damaged"), std::string::npos)
        << j.status().ToString();
  }
}

TEST_F(DurabilityTest, AFlippedBitInATableIsNeverServedAsAnEvent) {
  const std::string path = dir_.File("store");
  std::vector<wire::Record> good;
  {
    auto j = Open("store", {"d1"});
    for (int i = 0; i < 20; ++i)
      ASSERT_OK(j->Append("d1", Events(10, "note", "payload-")));
    good = All(*j, "d1");
  }
  { auto j = Open("store", {"d1"}); }  // reopening turns the log into a table
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    Rng rng(seed);
    FlipBit(OnlyFile(path, ".ldb"), rng);
    auto j = Journal::Open(Options("store", {"d1"}));
    if (!j.ok()) {
      EXPECT_TRUE(j.status().IsCorruption()) << j.status().ToString();
      continue;
    }
    auto r = (*j)->Read("d1", 1, 1000);
    if (r.ok()) {
      // Whatever is served must be exactly what was written.
      ASSERT_EQ(r->size(), good.size());
      for (size_t i = 0; i < good.size(); ++i) {
        ASSERT_EQ((*r)[i].SerializeAsString(), good[i].SerializeAsString());
      }
    } else {
      EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
    }
  }
}

}  // namespace
}  // namespace cairn::journal
