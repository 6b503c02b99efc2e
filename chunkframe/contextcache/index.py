"""The cross-context keyword index in Redis: one set per keyword, read by ``find``."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from ..storage.state import pipelined
from .entries import FIELD_SEP, field_of, with_own_keyword
from .types import ContextType, decode_value

__all__ = ["FIND_COLUMNS", "context_keys", "index_head", "index_key", "member", "PUT_LUA", "REMOVE_LUA",
           "FIND_LUA", "postings", "find", "find_cluster", "found", "as_str"]

#: the columns of a ``find`` result, in order
FIND_COLUMNS = ["context", "type", "key", "value"]

# Layout. Keyword ``w`` (normalised: stripped, lower-cased) has the set
# ``{prefix}:ctxkw:{<w>}`` whose members are ``"<context id>\x1f<TYPE>\x1f<key>"``, one per
# entry having ``w`` (its key's own keyword included). The keyword is the key's hash tag, so
# on Redis Cluster the index shards by keyword, evenly, and ``find`` reads one slot. A
# context id has no control characters (validate_id) and a type none, so a member splits at
# its first two \x1f whatever the key holds.
#
# On a standalone Redis (the embedded default, a redis:// URL, Sentinel) the sets are written
# by the same Lua scripts (put, remove) and MULTI/EXEC transactions (clear) that write the
# context's entries and bump its version, so the index changes atomically with the entries.
# Those scripts compute keyword key names, which a Redis Cluster refuses as cross-slot: there
# the scripts and transactions touch the context's slot only (an empty index head tells the
# scripts so, and they return what the index must lose) and the index is written around
# them, slot by slot: members are added before the entries are written and removed after,
# so a crash in between leaves a stale member, never a missing one. ``find`` reads each
# hit's record back and keeps it only if the record still has the keyword, so a stale
# member (left that way, by an older chunkframe, or a hand-edited hash) is never returned.
# Two processes rewriting the same entry at once with different keywords can, on a cluster,
# leave it out of a keyword's set; ``ContextCache.reindex()`` puts it back.


def index_head(prefix: str) -> str:
    """What every index key starts with: ``"<prefix>:ctxkw:{"`` (the scripts add the rest)."""
    return f"{prefix}:ctxkw:{{"


def context_keys(prefix: str, context_id: str) -> tuple[str, str]:
    """The Redis keys of a context: its entries hash and its version counter (the id is
    their hash tag: one slot)."""
    base = f"{prefix}:ctx:{{{context_id}}}"
    return f"{base}:entries", f"{base}:version"


def index_key(prefix: str, word: str) -> str:
    """The Redis key of keyword ``word``'s set (``word`` already normalised)."""
    return f"{index_head(prefix)}{word}}}"


def member(context_id: str, ctype: ContextType, key: str) -> str:
    """The index member naming one entry: ``"<context id>\\x1f<TYPE>\\x1f<key>"``."""
    return f"{context_id}{FIELD_SEP}{field_of(ctype, key)}"


# Lua: write entries of one context and their index memberships, bump the version.
# KEYS[1] entries hash, KEYS[2] version counter
# ARGV[1] index key head "<prefix>:ctxkw:{" ('': a cluster, index not written here),
# ARGV[2] member head "<context id>\x1f",
# ARGV[3] JSON list, per entry, of its keywords: the own one (the key lower-cased, as Python
#   does it) first, then the others of the record
# then per entry: field, record
# returns the new version; with ARGV[1] '': {new version, JSON {keyword: [members]} of the
# memberships the index must lose}
# Old records come in one HMGET, entries go in one HSET, and memberships are gathered per
# keyword into one SADD/SREM each (per 2,000-4,000 items: Lua's unpack limit), so a batch
# costs few calls beyond one per distinct keyword.
PUT_LUA = """
local head, mhead = ARGV[1], ARGV[2]
local words = cjson.decode(ARGV[3])
local n = #words
local olds = {}
for i = 1, n, 2000 do
  local fields = {}
  for e = i, math.min(i + 1999, n) do fields[#fields + 1] = ARGV[2 + 2 * e] end
  local got = redis.call('HMGET', KEYS[1], unpack(fields))
  for j, v in ipairs(got) do olds[i + j - 1] = v end
end
local adds, removes = {}, {}
local function note(into, w, m)
  local t = into[w]
  if t then t[#t + 1] = m else into[w] = {m} end
end
for e = 1, n do
  local kws, m, old = words[e], mhead .. ARGV[2 + 2 * e], olds[e]
  if old then
    local new, had = {}, {[kws[1]] = true}
    for _, w in ipairs(kws) do new[w] = true end
    local ok, rec = pcall(cjson.decode, old)
    if ok and type(rec) == 'table' and type(rec['k']) == 'table' then
      for _, w in ipairs(rec['k']) do
        if type(w) == 'string' then had[w] = true end
      end
    end
    for w in pairs(had) do
      if not new[w] then note(removes, w, m) end
    end
    for w in pairs(new) do
      if not had[w] then note(adds, w, m) end
    end
  else
    for _, w in ipairs(kws) do note(adds, w, m) end
  end
end
for i = 4, #ARGV, 4000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 3999, #ARGV)))
end
local function apply(cmd, by)
  for w, ms in pairs(by) do
    for i = 1, #ms, 4000 do
      redis.call(cmd, head .. w .. '}', unpack(ms, i, math.min(i + 3999, #ms)))
    end
  end
end
if head == '' then return {redis.call('INCR', KEYS[2]), cjson.encode(removes)} end
apply('SREM', removes)
apply('SADD', adds)
return redis.call('INCR', KEYS[2])
"""

# Lua: delete one entry and its index memberships, bump the version.
# KEYS[1] entries hash, KEYS[2] version counter
# ARGV[1] index key head ('': a cluster, index not written here), ARGV[2] member,
# ARGV[3] field, ARGV[4] own keyword
# returns the new version; with ARGV[1] '': {new version, the deleted record or nil}
REMOVE_LUA = """
local old = redis.call('HGET', KEYS[1], ARGV[3])
if old then
  if ARGV[1] ~= '' then
    redis.call('SREM', ARGV[1] .. ARGV[4] .. '}', ARGV[2])
    local ok, rec = pcall(cjson.decode, old)
    if ok and type(rec) == 'table' and type(rec['k']) == 'table' then
      for _, w in ipairs(rec['k']) do
        if type(w) == 'string' then redis.call('SREM', ARGV[1] .. w .. '}', ARGV[2]) end
      end
    end
  end
  redis.call('HDEL', KEYS[1], ARGV[3])
end
if ARGV[1] == '' then return {redis.call('INCR', KEYS[2]), old} end
return redis.call('INCR', KEYS[2])
"""


def postings(context_id: str, raw: dict[Any, Any], ctype: ContextType | None
             ) -> dict[str, list[str]]:
    """keyword → members of the entries of ``raw`` (an HGETALL answer) of ``ctype`` (all if
    None): what deleting those entries must take out of the index."""
    out: dict[str, list[str]] = {}
    for f, rec in raw.items():
        field = as_str(f)
        tname, sep, key = field.partition(FIELD_SEP)
        if not sep or (ctype is not None and tname != ctype.value):
            continue
        try:
            stored = json.loads(rec)["k"]
        except (ValueError, KeyError, TypeError):
            stored = []
        words = stored if isinstance(stored, list) else []
        m = f"{context_id}{FIELD_SEP}{field}"
        for w in with_own_keyword(key, (w for w in words if isinstance(w, str))):
            out.setdefault(w, []).append(m)
    return out


# Lua: the members of one keyword's set with their records, in one round trip, as one JSON
# text whose records are embedded as they are stored (one bulk string and one json.loads in
# Python, instead of two replies and a json.loads per hit; no number goes through cjson).
# KEYS[1] the keyword's set; ARGV[1] "<prefix>:ctx:{", ARGV[2] "}:entries"
# returns '[member, record, member, record, ...]': members whose record is missing or not
# a JSON object are left out
FIND_LUA = """
local out = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local cut = string.find(m, '\\31', 1, true)
  if cut then
    local record = redis.call('HGET', ARGV[1] .. string.sub(m, 1, cut - 1) .. ARGV[2],
                              string.sub(m, cut + 1))
    if record then
      local ok, rec = pcall(cjson.decode, record)
      if ok and type(rec) == 'table' then
        out[#out + 1] = cjson.encode(m) .. ',' .. record
      end
    end
  end
end
return '[' .. table.concat(out, ',') .. ']'
"""


def find(script: Any, prefix: str, word: str, ctype: ContextType | None) -> pd.DataFrame:
    """Entries of every context having keyword ``word`` (normalised), of ``ctype`` if given.

    ``script``: :data:`FIND_LUA` registered on the client; one round trip returns each
    member of the keyword's set with its record. A member whose record is gone, is not a
    context record, or no longer has ``word`` is skipped. Returns :data:`FIND_COLUMNS`,
    ordered by context, type (in ContextType order), key.
    """
    answer = json.loads(script(keys=[index_key(prefix, word)],
                               args=[f"{prefix}:ctx:{{", "}:entries"]))
    return found(answer[::2], answer[1::2], word, ctype)


def find_cluster(client: Any, prefix: str, word: str, ctype: ContextType | None
                 ) -> pd.DataFrame:
    """:func:`find` on a Redis Cluster, where the keyword's set and the records it names
    live in other slots: the set in one call, then an HMGET per context, pipelined (a round
    trip per node holding any)."""
    fields: dict[str, list[str]] = {}
    for m in client.smembers(index_key(prefix, word)):
        cid, sep, field = as_str(m).partition(FIELD_SEP)
        if sep:
            fields.setdefault(cid, []).append(field)
    answers = pipelined(client, [("HMGET", context_keys(prefix, cid)[0], *fs)
                                 for cid, fs in fields.items()])
    hits, raws = [], []
    for (cid, fs), got in zip(fields.items(), answers, strict=True):
        for field, raw in zip(fs, got, strict=True):
            if raw is not None:
                hits.append(f"{cid}{FIELD_SEP}{field}")
                raws.append(raw if isinstance(raw, bytes) else raw.encode())
    try:  # one parse of them all, as FIND_LUA's answer; one by one if any is not JSON
        records = json.loads(b"[" + b",".join(raws) + b"]")
    except ValueError:
        records = [_json_or_none(raw) for raw in raws]
    kept = [(m, r) for m, r in zip(hits, records, strict=True) if isinstance(r, dict)]
    return found([m for m, _ in kept], [r for _, r in kept], word, ctype)


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def found(members: list[str], records: list[Any], word: str, ctype: ContextType | None
          ) -> pd.DataFrame:
    """The :data:`FIND_COLUMNS` frame of index ``members`` whose ``records`` (parsed JSON
    objects) still have keyword ``word``, of ``ctype`` if given, ordered by context, type
    (in ContextType order), key."""
    order = {t.value: i for i, t in enumerate(ContextType)}
    rows = []
    for member, record in zip(members, records, strict=True):
        cid, _, field = member.partition(FIELD_SEP)
        tname, sep, key = field.partition(FIELD_SEP)
        if not sep or tname not in order or (ctype is not None and tname != ctype.value):
            continue
        stored = record.get("k")
        if "v" in record and isinstance(stored, list) and (word in stored
                                                           or word == key.lower()):
            rows.append((cid, order[tname], tname, key, decode_value(record["v"])))
    rows.sort(key=lambda r: (r[0], r[1], r[3]))
    return pd.DataFrame({
        "context": pd.Series([r[0] for r in rows], dtype=object),
        "type": pd.Series([r[2] for r in rows], dtype=object),
        "key": pd.Series([r[3] for r in rows], dtype=object),
        "value": pd.Series([r[4] for r in rows], dtype=object),
    }, columns=FIND_COLUMNS)


def as_str(x: bytes | str) -> str:
    """A Redis answer as str, from a client with or without ``decode_responses``."""
    return x.decode() if isinstance(x, bytes) else x
