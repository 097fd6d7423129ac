#include "journal/layout.h"

#include "base/bytes.h"

namespace cairn::journal::layout {
namespace {

std::string Prefixed(char tag, std::string_view device) {
  std::string k(1, tag);
  PutLengthPrefixed(&k, device);
  return k;
}

bool TakeTag(std::string_view* in, char tag) {
  if (in->empty() || (*in)[0] != tag) return false;
  in->remove_prefix(1);
  return true;
}

}  // namespace

std::string MetaKey(std::string_view device) { return Prefixed('m', device); }

std::string EventKey(std::string_view device, uint64_t seq) {
  std::string k = Prefixed('e', device);
  PutU64BE(&k, seq);
  return k;
}

std::string EventPrefix(std::string_view device) { return Prefixed('e', device); }

std::string SnapshotKey(std::string_view device, uint32_t slot, uint32_t index) {
  std::string k = Prefixed('s', device);
  PutU32BE(&k, (slot << 31) | index);
  return k;
}

std::string SnapshotPrefix(std::string_view device) { return Prefixed('s', device); }

bool ParseSnapshotKey(std::string_view key, std::string_view device, uint32_t* slot,
                      uint32_t* index) {
  std::string_view d;
  uint32_t v = 0;
  if (!TakeTag(&key, 's') || !GetLengthPrefixed(&key, &d) || d != device ||
      !GetU32BE(&key, &v) || !key.empty()) {
    return false;
  }
  *slot = v >> 31;
  *index = v & 0x7fffffffu;
  return true;
}

std::string KvKey(std::string_view device, std::string_view store, std::string_view key) {
  std::string k = KvStorePrefix(device, store);
  k.append(key);  // last component: raw, so keys of a store sort as bytes
  return k;
}

std::string KvPrefix(std::string_view device) { return Prefixed('v', device); }

std::string KvStorePrefix(std::string_view device, std::string_view store) {
  std::string k = Prefixed('v', device);
  PutLengthPrefixed(&k, store);
  return k;
}

std::string PeerKey(std::string_view node_id) { return Prefixed('p', node_id); }

std::string ForkKey(std::string_view device, uint64_t seq) {
  std::string k = Prefixed('f', device);
  PutU64BE(&k, seq);
  return k;
}

std::string FollowerPrefix(std::string_view device) { return Prefixed('a', device); }

std::string FollowerKey(std::string_view device, std::string_view node_id) {
  std::string k = Prefixed('a', device);
  PutLengthPrefixed(&k, node_id);
  return k;
}

bool ParseMetaKey(std::string_view key, std::string* device) {
  std::string_view d;
  if (!TakeTag(&key, 'm') || !GetLengthPrefixed(&key, &d) || !key.empty()) return false;
  device->assign(d);
  return true;
}

bool ParseEventKey(std::string_view key, std::string* device, uint64_t* seq) {
  std::string_view d;
  if (!TakeTag(&key, 'e') || !GetLengthPrefixed(&key, &d) || !GetU64BE(&key, seq) ||
      !key.empty()) {
    return false;
  }
  device->assign(d);
  return true;
}

bool ParseKvKey(std::string_view key, std::string* device, std::string* store,
                std::string* kv_key) {
  std::string_view d, s;
  if (!TakeTag(&key, 'v') || !GetLengthPrefixed(&key, &d) ||
      !GetLengthPrefixed(&key, &s) || key.empty()) {
    return false;
  }
  device->assign(d);
  store->assign(s);
  kv_key->assign(key);
  return true;
}

bool ParseFollowerKey(std::string_view key, std::string* device, std::string* node_id) {
  std::string_view d, n;
  if (!TakeTag(&key, 'a') || !GetLengthPrefixed(&key, &d) ||
      !GetLengthPrefixed(&key, &n) || !key.empty()) {
    return false;
  }
  device->assign(d);
  node_id->assign(n);
  return true;
}

}  // namespace cairn::journal::layout
