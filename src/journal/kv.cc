#include "journal/kv.h"

#include <nlohmann/json.hpp>

#include "base/json_limits.h"

namespace cairn::journal {
namespace {

using nlohmann::json;

Status Bad(std::string_view type, std::string_view why) {
  return Status::InvalidArgument(std::string(type) + " payload " + std::string(why));
}

Status CheckName(std::string_view type, const json& doc, const char* field, size_t max) {
  auto it = doc.find(field);
  if (it == doc.end() || !it->is_string()) {
    return Bad(type, std::string("needs a string \"") + field + "\"");
  }
  const auto& s = it->get_ref<const std::string&>();
  if (s.empty() || s.size() > max) {
    return Bad(type, std::string("\"") + field + "\" must be 1 to " +
                         std::to_string(max) + " bytes");
  }
  return Status::Ok();
}

Status CheckFields(std::string_view type, const json& doc, bool wants_value) {
  for (const auto& [name, value] : doc.items()) {
    if (name != "store" && name != "key" && name != "value" && name != "ttl_ms") {
      return Bad(type, "has an unknown field \"" + name + "\"");
    }
  }
  CAIRN_RETURN_IF_ERROR(CheckName(type, doc, "store", kMaxKvStoreBytes));
  CAIRN_RETURN_IF_ERROR(CheckName(type, doc, "key", kMaxKvKeyBytes));
  if (wants_value && !doc.contains("value")) return Bad(type, "needs a \"value\"");
  if (!wants_value && doc.contains("value")) return Bad(type, "takes no \"value\"");
  if (auto it = doc.find("ttl_ms"); it != doc.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 ||
        it->get<int64_t>() > (int64_t{1} << 40)) {
      return Bad(type, "\"ttl_ms\" must be an integer from 0 to 2^40");
    }
  }
  return Status::Ok();
}

}  // namespace

bool IsKvType(std::string_view type) {
  return type == "kv.put" || type == "kv.patch" || type == "kv.del";
}

Result<KvOp> ParseKvOp(std::string_view type, std::string_view payload) {
  // Before the recursive parser sees it: the source refuses such a payload and a
  // replica that receives one signed keeps it as an opaque event (kv.h).
  if (!JsonDepthWithinLimit(payload)) {
    return Bad(type, "nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  json doc =
      json::parse(payload.begin(), payload.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Bad(type, "is not valid JSON");
  if (!doc.is_object()) return Bad(type, "must be a JSON object");
  KvOp op;
  op.kind = type == "kv.put"     ? KvKind::kPut
            : type == "kv.patch" ? KvKind::kPatch
                                 : KvKind::kDel;
  CAIRN_RETURN_IF_ERROR(CheckFields(type, doc, op.kind != KvKind::kDel));
  op.store = doc["store"].get<std::string>();
  op.key = doc["key"].get<std::string>();
  if (op.kind != KvKind::kDel) op.value_json = doc["value"].dump();
  if (auto it = doc.find("ttl_ms"); it != doc.end()) {
    op.has_ttl = true;
    op.ttl_ms = it->get<int64_t>();
  }
  return op;
}

std::optional<wire::KvEntry> ApplyKvOp(const KvOp& op,
                                       const std::optional<wire::KvEntry>& current,
                                       uint64_t seq, int64_t time_us) {
  if (op.kind == KvKind::kDel) return std::nullopt;
  const bool live = current.has_value() && !KvExpired(*current, time_us);
  wire::KvEntry next;
  next.set_rev(seq);
  if (op.kind == KvKind::kPut) {
    next.set_value(op.value_json);
  } else {
    // A stored value comes from our own ops or from a signed snapshot; one that is
    // not JSON within the depth limit patches as {} on every node alike.
    json target = json::object();
    if (live && JsonDepthWithinLimit(current->value())) {
      target = json::parse(current->value(), nullptr, false);
      if (target.is_discarded()) target = json::object();
    }
    // The patch and the target nest at most kMaxJsonDepth deep, so does the result.
    target.merge_patch(json::parse(op.value_json, nullptr, false));
    std::string merged = target.dump();
    if (merged.size() > kMaxKvValueBytes) {
      // Deterministic on every node: a patch that would grow the value past the
      // limit leaves the entry as it was.
      if (live) return current;
      return std::nullopt;
    }
    next.set_value(std::move(merged));
  }
  int64_t expiry = 0;
  if (op.has_ttl) {
    expiry = op.ttl_ms == 0 ? 0 : time_us + op.ttl_ms * 1000;
  } else if (op.kind == KvKind::kPatch && live) {
    expiry = current->expiry_us();
  }
  next.set_expiry_us(expiry);
  return next;
}

}  // namespace cairn::journal
