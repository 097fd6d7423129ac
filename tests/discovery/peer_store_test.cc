// Peer history in a real LevelDB: round trip, key layout, erase, damage is named.
#include "discovery/peer_store.h"

#include <gtest/gtest.h>
#include <leveldb/db.h>

#include <memory>

#include "base/bytes.h"
#include "testutil/pki.h"
#include "testutil/status_matchers.h"

namespace cairn::discovery {
namespace {

class PeerStoreTest : public ::testing::Test {
 protected:
  PeerStoreTest() {
    leveldb::Options o;
    o.create_if_missing = true;
    leveldb::DB* db = nullptr;
    EXPECT_TRUE(leveldb::DB::Open(o, dir_.File("db"), &db).ok());
    db_.reset(db);
    store_ = std::make_unique<LevelDbPeerStore>(db);
  }
  static wire::PeerRecord Record(const std::string& id) {
    wire::PeerRecord r;
    r.set_node_id(id);
    r.add_addresses("10.0.0.1:7411");
    r.set_last_seen_us(123);
    r.set_attempts(2);
    r.set_pinned(true);
    return r;
  }
  testutil::TempDir dir_;
  std::unique_ptr<leveldb::DB> db_;
  std::unique_ptr<LevelDbPeerStore> store_;
};

TEST_F(PeerStoreTest, KeyIsPrefixAndLengthPrefixedId) {
  std::string expected = "p";
  PutU32BE(&expected, 2);
  expected += "n1";
  EXPECT_EQ(PeerKey("n1"), expected);
}

TEST_F(PeerStoreTest, SavedRecordsLoadBackAndOtherKeysAreIgnored) {
  ASSERT_OK(store_->Save(Record("b")));
  ASSERT_OK(store_->Save(Record("a")));
  ASSERT_TRUE(db_->Put(leveldb::WriteOptions(), "m-some-stream", "x").ok());
  ASSERT_TRUE(db_->Put(leveldb::WriteOptions(), "q", "x").ok());
  Result<std::vector<wire::PeerRecord>> got = store_->Load(10);
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].node_id(), "a");
  EXPECT_EQ((*got)[1].SerializeAsString(), Record("b").SerializeAsString());
  EXPECT_EQ(store_->Load(1)->size(), 1u);
}

TEST_F(PeerStoreTest, EraseForgetsAPeer) {
  ASSERT_OK(store_->Save(Record("a")));
  ASSERT_OK(store_->Erase("a"));
  ASSERT_OK(store_->Erase("never-there"));
  EXPECT_TRUE(store_->Load(10)->empty());
}

TEST_F(PeerStoreTest, ARecordThatDoesNotParseIsCorruption) {
  ASSERT_TRUE(db_->Put(leveldb::WriteOptions(), PeerKey("a"), "\xff\xff\xff").ok());
  Result<std::vector<wire::PeerRecord>> got = store_->Load(10);
  EXPECT_TRUE(got.status().IsCorruption()) << got.status().ToString();
}

TEST_F(PeerStoreTest, ARecordUnderAnotherIdsKeyIsCorruption) {
  ASSERT_TRUE(
      db_->Put(leveldb::WriteOptions(), PeerKey("a"), Record("b").SerializeAsString())
          .ok());
  EXPECT_TRUE(store_->Load(10).status().IsCorruption());
}

}  // namespace
}  // namespace cairn::discovery
