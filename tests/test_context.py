"""Tests of the context cache on a real redis-server: rules, layout, metrics, LRU, processes."""

from __future__ import annotations

import collections.abc
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
from clock import fake_clock
from redis.backoff import NoBackoff
from redis.retry import Retry
from threads import run_threads

import chunkframe.contextcache.cache as context_module
import chunkframe.contextcache.entries as entries_module
from chunkframe.contextcache import (
    Context,
    ContextCache,
    ContextKeyError,
    ContextType,
    keyword,
    register_value_type,
)
from chunkframe.core.errors import (
    BackendUnavailableError,
    ChunkFrameError,
    ContextError,
    InvalidDatasetIdError,
)

ALL_TYPES = [t.value for t in ContextType]


# ---------------------------------------------------------------- value types under test


@register_value_type
@dataclasses.dataclass(frozen=True)
class Flight:
    carrier: str
    number: int
    route: list[str]
    note: str = ""

    @keyword
    def code(self) -> str:
        return f"{self.carrier}{self.number}"

    @keyword(separator="-")
    def airports(self) -> str:
        return "-".join(self.route)

    @keyword
    def nothing(self) -> None:
        return None

    @keyword
    def many(self) -> list[str]:
        return [self.carrier, "Scheduled Service"]


@register_value_type
@dataclasses.dataclass
class Box:
    inner: Flight
    items: list[int]


@dataclasses.dataclass
class NotRegistered:
    x: int


@register_value_type
@dataclasses.dataclass
class Broken:
    x: int

    @keyword
    def boom(self) -> str:
        raise RuntimeError("no keyword today")


# ---------------------------------------------------------------------------- helpers


def keys_of(prefix: str, cid: str) -> tuple[str, str]:
    return f"{prefix}:ctx:{{{cid}}}:entries", f"{prefix}:ctx:{{{cid}}}:version"


def expected_memory(r: redis.Redis, prefix: str, cid: str) -> int:
    """The documented measure, recomputed from what Redis holds."""
    ek, vk = keys_of(prefix, cid)
    total = len(ek.encode()) + len(vk.encode())
    for field, record in r.hgetall(ek).items():
        key = field.decode().split("\x1f", 1)[1]
        words = set(json.loads(record)["k"]) | {key.lower()}
        total += len(field) + len(record)
        total += sum(len(w.encode()) + len(key.encode()) for w in words)
    return total


def in_memory(cache: ContextCache) -> set[str]:
    return set(cache.contexts(include_stored=False)["context_id"])


@pytest.fixture
def cache(redis_client: redis.Redis, prefix: str) -> ContextCache:
    return ContextCache(redis_client, prefix=prefix)


@pytest.fixture
def ctx(cache: ContextCache) -> Context:
    return cache.context("analysis-42")


# ------------------------------------------------------------------------ ContextType


def test_context_type_parse_accepts_members_and_any_case() -> None:
    assert ContextType.parse("metadata") is ContextType.METADATA
    assert ContextType.parse(" Udf ") is ContextType.UDF
    assert ContextType.parse(ContextType.COST) is ContextType.COST
    assert [t.value for t in ContextType] == [
        "METADATA", "DATA", "RESOURCE", "OBJECT", "ENV", "COST", "UDF", "VARIABLE"]


@pytest.mark.parametrize("bad", ["nope", "", "META", 3, None])
def test_unknown_type_lists_valid_ones(bad: object) -> None:
    with pytest.raises(ContextError) as err:
        ContextType.parse(bad)
    for name in ALL_TYPES:
        assert name in str(err.value)
    assert repr(bad) in str(err.value)


def test_unknown_type_in_every_method(ctx: Context) -> None:
    ctx.put("k", 1)
    for call in (
        lambda: ctx.put("k", 1, type="bogus"),
        lambda: ctx.put_many({"k": 1}, type="bogus"),
        lambda: ctx.get("k", type="bogus"),
        lambda: ctx.remove("k", type="bogus"),
        lambda: ctx.clear(type="bogus"),
        lambda: ctx.search("k", type="bogus"),
        lambda: ctx.items(type="bogus"),
        lambda: ctx.values(type="bogus"),
        lambda: ctx.to_frame(type="bogus"),
        lambda: ctx.keys(type="bogus"),
    ):
        with pytest.raises(ContextError, match="unknown context type 'bogus'"):
            call()
    assert ctx.get("k") == 1


# ------------------------------------------------------------------ put/get/remove/clear


@pytest.mark.parametrize("ctype", ALL_TYPES)
def test_put_get_remove_per_type(ctx: Context, ctype: str) -> None:
    ctx.put("k", {"a": [1, 2.5, None, True, "x"]}, type=ctype.lower())
    assert ctx.get("k", type=ctype) == {"a": [1, 2.5, None, True, "x"]}
    assert ctx.get("k") == {"a": [1, 2.5, None, True, "x"]}
    assert len(ctx) == 1 and "k" in ctx and ctx.keys() == ["k"] and ctx.keys(ctype) == ["k"]
    others = [t for t in ALL_TYPES if t != ctype]
    assert ctx.keys(others[0]) == []
    frame = ctx.to_frame(type=ctype)
    assert frame.to_dict("records") == [{"type": ctype, "key": "k",
                                         "value": {"a": [1, 2.5, None, True, "x"]}}]
    assert ctx.to_frame(type=others[0]).empty
    assert ctx.items(type=ctype) == [("k", {"a": [1, 2.5, None, True, "x"]})]
    assert ctx.items(type=others[0]) == [] and ctx.values(type=others[0]) == []
    assert ctx.get("k", type=others[0]) is None
    assert ctx.get("k", "fallback", type=others[0]) == "fallback"
    ctx.remove("k", type=ctype)
    assert len(ctx) == 0 and "k" not in ctx
    assert ctx.get("k") is None
    with pytest.raises(ContextKeyError):
        ctx["k"]


def test_put_replaces_value(ctx: Context) -> None:
    ctx.put("k", "old words here")
    ctx.put("k", "new")
    assert ctx.get("k") == "new"
    assert len(ctx) == 1
    assert ctx.search("old").empty and ctx.search("words").empty
    assert list(ctx.search("new")["key"]) == ["k"]


def test_missing_key_is_a_key_error_naming_context_and_key(ctx: Context) -> None:
    with pytest.raises(KeyError) as err:
        ctx["ghost"]
    assert isinstance(err.value, ChunkFrameError)
    assert "'analysis-42'" in str(err.value) and "'ghost'" in str(err.value)
    with pytest.raises(ContextKeyError, match="'ghost'"):
        ctx.remove("ghost")
    ctx.put("ghost", 1, type="ENV")
    assert ctx.get("ghost", type="DATA") is None
    with pytest.raises(ContextKeyError, match="it exists under ENV"):
        ctx.remove("ghost", type="DATA")


def test_get_never_raises_for_a_missing_key(ctx: Context) -> None:
    assert ctx.get("ghost") is None
    assert ctx.get("ghost", 0) == 0 and ctx.get("ghost", default=[]) == []
    assert ctx.get("ghost", "x", type="udf") == "x"
    ctx.put("k", None)  # a stored None is a value, told apart from a missing key by `in`
    assert ctx.get("k", "default") is None and "k" in ctx
    with pytest.raises(ContextError, match="unknown context type 'bogus'"):
        ctx.get("ghost", type="bogus")  # a bad type name is an error, not a miss
    with pytest.raises(TypeError):
        ctx.get("k", None, "DATA")  # type is keyword-only: no silent default="DATA"


def test_context_is_a_mapping(ctx: Context) -> None:
    assert isinstance(ctx, collections.abc.Mapping)
    assert len(ctx) == 0 and list(ctx) == [] and dict(ctx) == {} and not ctx
    ctx.put_many({"b": 2, "a": [1]}, type="DATA")
    ctx.put("c", "three", type="ENV")
    assert len(ctx) == 3 and list(ctx) == ["a", "b", "c"] and bool(ctx)
    assert ctx["a"] == [1] and ctx["c"] == "three"
    assert "a" in ctx and "zz" not in ctx and 1 not in ctx and None not in ctx
    assert dict(ctx) == {"a": [1], "b": 2, "c": "three"}
    assert ctx.items() == [("a", [1]), ("b", 2), ("c", "three")]
    assert ctx.items(type="env") == [("c", "three")]
    assert ctx.values() == [[1], 2, "three"] and ctx.values(type="DATA") == [[1], 2]
    assert ctx.keys() == ["a", "b", "c"] and ctx.keys("DATA") == ["a", "b"]
    assert list(ctx.to_frame()["key"]) == ["a", "b", "c"]
    assert list(ctx.to_frame(type="DATA")["type"]) == ["DATA", "DATA"]
    with pytest.raises(ContextKeyError, match="has no key 'zz'"):
        ctx["zz"]
    with pytest.raises(ContextError, match="keys are strings"):
        ctx[1]  # type: ignore[index]
    snapshot = ctx.items()
    ctx.put("d", 4)
    assert len(snapshot) == 3 and len(ctx) == 4  # items() is a snapshot


def test_to_frame_orders_by_type_then_key_and_items_by_key(ctx: Context) -> None:
    ctx.put("z", 1, type="METADATA")
    ctx.put("a", 2, type="ENV")
    ctx.put("m", 3, type="DATA")
    frame = ctx.to_frame()
    assert list(zip(frame["type"], frame["key"], strict=True)) == [
        ("METADATA", "z"), ("DATA", "m"), ("ENV", "a")]
    assert [k for k, _ in ctx.items()] == list(ctx) == ["a", "m", "z"]


def test_key_under_several_types_needs_type(ctx: Context) -> None:
    ctx.put("x", 1, type="DATA")
    ctx.put("x", 2, type="ENV")
    with pytest.raises(ContextError, match="DATA, ENV; pass type="):
        ctx.get("x")
    with pytest.raises(ContextError, match="DATA, ENV; pass type=") as err:
        ctx["x"]
    assert not isinstance(err.value, KeyError)  # there, only ambiguous: not a miss
    with pytest.raises(ContextError, match="pass type="):
        ctx.remove("x")
    assert ctx.get("x", type="DATA") == 1 and ctx.get("x", type="env") == 2
    assert ctx.keys() == ["x"] and len(ctx) == 1 and list(ctx) == ["x"]  # one key...
    assert ctx.items() == [("x", 1), ("x", 2)]  # ...two entries, in ContextType order
    assert ctx.info()["entries"] == 2
    ctx.remove("x", type="DATA")
    assert ctx.get("x") == 2 and ctx["x"] == 2


def test_clear_by_type_and_all(ctx: Context, redis_client: redis.Redis, prefix: str) -> None:
    ctx.put_many({"a": 1, "b": 2}, type="DATA")
    ctx.put("c", 3, type="ENV")
    ek, vk = keys_of(prefix, "analysis-42")
    assert ctx.clear(type="data") == 2
    assert ctx.keys() == ["c"]
    assert set(redis_client.hkeys(ek)) == {b"ENV\x1fc"}
    assert ctx.clear(type="DATA") == 0
    assert ctx.clear() == 1
    assert len(ctx) == 0 and not redis_client.exists(ek)
    assert int(redis_client.get(vk)) == 5  # 2 puts (one put_many) + 3 clears


def test_values_round_trip_as_json(cache: ContextCache, ctx: Context) -> None:
    ctx.put("nested", {"é": ["ü", {"deep": [1, -2, 3.25, None, False]}], "n": 10**30})
    ctx.put("tuple", (1, ("a", 2)))
    ctx.put("np", np.int64(7))
    ctx.put("npf", np.float32(0.5))
    ctx.put("nan", float("nan"))
    assert ctx.get("tuple") == [1, ["a", 2]]
    assert ctx.get("np") == 7 and type(ctx.get("np")) is int
    assert ctx.get("npf") == 0.5
    assert ctx.get("nan") != ctx.get("nan")
    got = ctx.get("nested")
    got["é"].append("mutated")
    assert ctx.get("nested")["é"] == ["ü", {"deep": [1, -2, 3.25, None, False]}]
    cache.clear()
    assert ctx.get("nested")["n"] == 10**30 and ctx.get("tuple") == [1, ["a", 2]]


def test_put_snapshots_the_value(ctx: Context) -> None:
    value = {"a": [1]}
    ctx.put("k", value)
    value["a"].append(2)
    assert ctx.get("k") == {"a": [1]}


# --------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "value, part, kind",
    [
        ({1, 2}, "value", "set"),
        (object(), "value", "object"),
        (b"raw", "value", "bytes"),
        ({"ok": [1, {2, 3}]}, "value['ok'][1]", "set"),
        ({1: "int key"}, "value[1]", "int"),
        (NotRegistered(1), "value", "NotRegistered"),
        ({"__cf_type__": "x", "other": 1}, "value", "dict"),
        (np.arange(3), "value", "ndarray"),
        (pd.Timestamp("2024-01-01"), "value", "Timestamp"),
    ],
)
def test_unserialisable_value(ctx: Context, redis_client: redis.Redis, prefix: str,
                              value: object, part: str, kind: str) -> None:
    with pytest.raises(ContextError) as err:
        ctx.put("bad", value, type="OBJECT")
    msg = str(err.value)
    assert "'bad'" in msg and "type OBJECT" in msg and "'analysis-42'" in msg
    assert f"{part} has type '{kind}'" in msg
    assert "nothing is pickled" in msg
    assert not redis_client.exists(keys_of(prefix, "analysis-42")[0])
    assert "bad" not in ctx


def test_unserialisable_hints(ctx: Context) -> None:
    with pytest.raises(ContextError, match="sorted list"):
        ctx.put("k", {1})
    with pytest.raises(ContextError, match=r"register_value_type\(NotRegistered\)"):
        ctx.put("k", NotRegistered(1))
    with pytest.raises(ContextError, match="reserved"):
        ctx.put("k", {"__cf_type__": 1})
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ContextError, match="contains itself"):
        ctx.put("k", loop)


@pytest.mark.parametrize("key", ["", 1, None, ("a",)])
def test_bad_keys(ctx: Context, key: object) -> None:
    for call in (lambda: ctx.put(key, 1), lambda: ctx.get(key), lambda: ctx.remove(key),
                 lambda: ctx.put_many([(key, 1)]), lambda: ctx[key]):
        with pytest.raises(ContextError, match="empty key|keys are strings"):
            call()
    assert key not in ctx


def test_huge_value_beyond_limit(redis_client: redis.Redis, prefix: str) -> None:
    cache = ContextCache(redis_client, prefix=prefix, max_value_bytes=1000)
    ctx = cache.context("c")
    ctx.put("fits", {"x": "a" * 900})
    with pytest.raises(ContextError, match="over the limit max_value_bytes=1000") as err:
        ctx.put("huge", {"x": "a" * 1000})
    assert "'huge'" in str(err.value)
    with pytest.raises(ContextError, match="max_value_bytes=1000"):
        ctx.put_many({"ok": 1, "huge": "b" * 2000})
    assert ctx.keys() == ["fits"]
    assert redis_client.hlen(keys_of(prefix, "c")[0]) == 1


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "{a}", "a\x00b", ".hidden", 5])
def test_context_ids_are_validated(cache: ContextCache, bad: object) -> None:
    with pytest.raises(InvalidDatasetIdError, match="context id"):
        cache.context(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidDatasetIdError):
        cache.invalidate(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_bytes": 0}, "max_bytes must be a positive"),
        ({"max_bytes": 1.5}, "max_bytes must be a positive"),
        ({"max_value_bytes": -1}, "max_value_bytes must be a positive"),
        ({"max_bytes": 100, "max_value_bytes": 200}, "larger than max_bytes=100"),
        ({"staleness": -1}, "staleness must be seconds"),
        ({"staleness": float("nan")}, "staleness must be seconds"),
    ],
)
def test_cache_arguments_are_checked(redis_client: redis.Redis, kwargs: dict, match: str) -> None:
    with pytest.raises(ContextError, match=match):
        ContextCache(redis_client, **kwargs)


def test_prefix_is_checked(redis_client: redis.Redis) -> None:
    with pytest.raises(InvalidDatasetIdError, match="key prefix"):
        ContextCache(redis_client, prefix="a{b}")


# ---------------------------------------------------------------------- keywords


def test_search_by_explicit_keyword_and_key(ctx: Context) -> None:
    ctx.put("Owner", 42, keywords=["Team-A", "Q3 2024"])
    ctx.put("other", 1, keywords="team-a")
    found = ctx.search("TEAM-A")
    assert list(found.columns) == ["type", "key", "value"]
    assert found.to_dict("records") == [
        {"type": "METADATA", "key": "Owner", "value": 42},
        {"type": "METADATA", "key": "other", "value": 1},
    ]
    assert list(ctx.search("q3 2024")["key"]) == ["Owner"]  # explicit keywords are whole
    assert ctx.search("q3").empty
    assert list(ctx.search("owner")["key"]) == ["Owner"]    # the key is a keyword
    assert list(ctx.search("  OWNER ")["key"]) == ["Owner"]
    assert ctx.search("own").empty                           # exact match, not substring


def test_search_default_separator_whitespace_and_commas(ctx: Context) -> None:
    ctx.put("route", "JFK,LAX  ORD,\tSFO\ndelayed")
    ctx.put("list", ["alpha beta", 3, "Gamma"])
    for word in ("jfk", "lax", "ord", "sfo", "delayed"):
        assert list(ctx.search(word)["key"]) == ["route"], word
    assert list(ctx.search("beta")["key"]) == ["list"]
    assert list(ctx.search("gamma")["key"]) == ["list"]
    assert ctx.search("3").empty
    assert ctx.search("jfk,lax").empty


def test_search_with_separator_rule(cache: ContextCache) -> None:
    ctx = cache.context("c", separator=";")
    ctx.put("k", "red car; Blue Sky;;")
    assert list(ctx.search("blue sky")["key"]) == ["k"]
    assert list(ctx.search("red car")["key"]) == ["k"]
    assert ctx.search("blue").empty and ctx.search("car").empty


def test_search_with_regex_rule(cache: ContextCache) -> None:
    ctx = cache.context("c", regex=r"#(\w+)")
    ctx.put("post", "loving the #Arrow and #pandas combo, not this")
    assert list(ctx.search("arrow")["key"]) == ["post"]
    assert list(ctx.search("pandas")["key"]) == ["post"]
    assert ctx.search("loving").empty and ctx.search("#arrow").empty
    groups = cache.context("g", regex=r"(\w+)=(\w+)")
    groups.put("cfg", "mode=fast level=3")
    for word in ("mode", "fast", "level", "3"):
        assert list(groups.search(word)["key"]) == ["cfg"], word
    plain = cache.context("p", regex=r"[A-Z]{3}")
    plain.put("r", "from JFK to LAX")
    assert list(plain.search("lax")["key"]) == ["r"] and plain.search("from").empty


def test_search_by_keyword_methods_of_registered_dataclass(cache: ContextCache) -> None:
    ctx = cache.context("flights", regex=r"\w+")
    flight = Flight("AA", 100, ["JFK", "LAX", "San Jose"], note="ignored words")
    ctx.put("f1", flight, type="OBJECT")
    ctx.put("f2", Flight("UA", 7, ["SFO"]), type="OBJECT")
    assert list(ctx.search("aa100")["key"]) == ["f1"]
    assert list(ctx.search("san jose")["key"]) == ["f1"]  # method rule: separator "-"
    assert ctx.search("san").empty
    assert list(ctx.search("scheduled")["key"]) == ["f1", "f2"]  # list result, context regex
    assert list(ctx.search("ua")["key"]) == ["f2"]
    assert ctx.search("ignored").empty and ctx.search("none").empty
    assert ctx.search("aa100").loc[0, "value"] == flight
    assert list(ctx.search("aa100", type="OBJECT")["key"]) == ["f1"]
    assert ctx.search("aa100", type="DATA").empty


def test_keyword_method_failures(ctx: Context, redis_client: redis.Redis, prefix: str) -> None:
    with pytest.raises(ContextError, match=r"Broken.boom\(\) raised RuntimeError"):
        ctx.put("b", Broken(1))
    assert not redis_client.exists(keys_of(prefix, "analysis-42")[0])
    with pytest.raises(ContextError, match="must take no argument besides self"):
        class Bad:
            @keyword
            def needs(self, x):  # noqa: ANN001, ANN202
                return x
    with pytest.raises(ContextError, match="not both"):
        keyword(separator=",", regex="x")
    with pytest.raises(ContextError, match="does not compile"):
        keyword(regex="(")


def test_keyword_rule_errors(cache: ContextCache) -> None:
    with pytest.raises(ContextError, match="not both"):
        cache.context("c", separator=",", regex=r"\w+")
    with pytest.raises(ContextError, match="does not compile"):
        cache.context("c", regex="[")
    with pytest.raises(ContextError, match="separator must be a non-empty string"):
        cache.context("c", separator="")
    with pytest.raises(ContextError, match="regex must be a string"):
        cache.context("c", regex=5)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [[""], ["ok", 3], ["  "], 7])
def test_explicit_keyword_errors(ctx: Context, bad: object) -> None:
    with pytest.raises(ContextError, match="keywords must be"):
        ctx.put("k", 1, keywords=bad)  # type: ignore[arg-type]
    assert "k" not in ctx


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_search_needs_a_keyword(ctx: Context, bad: object) -> None:
    with pytest.raises(ContextError, match="non-empty keyword string"):
        ctx.search(bad)  # type: ignore[arg-type]


def test_search_without_match_is_an_empty_frame(ctx: Context) -> None:
    ctx.put("k", "v")
    found = ctx.search("nothing")
    assert found.empty and list(found.columns) == ["type", "key", "value"]


def test_keywords_follow_updates_and_removes(ctx: Context) -> None:
    ctx.put("a", "shared one")
    ctx.put("b", "shared two")
    ctx.remove("a")
    assert list(ctx.search("shared")["key"]) == ["b"]
    assert ctx.search("one").empty
    ctx.clear()
    assert ctx.search("shared").empty and ctx.search("b").empty


def test_index_postings_grow_and_shrink(ctx: Context) -> None:
    for key in ("a", "b", "c"):
        ctx.put(key, "shared", type="DATA")
    assert list(ctx.search("shared")["key"]) == ["a", "b", "c"]
    ctx.remove("b")
    assert list(ctx.search("shared")["key"]) == ["a", "c"]
    ctx.remove("a")
    assert list(ctx.search("shared")["key"]) == ["c"]
    ctx.put("c", "shared again", type="DATA")      # same key keeps its posting once
    assert list(ctx.search("shared")["key"]) == ["c"]
    ctx.put("a", "shared", type="DATA")
    assert list(ctx.search("shared")["key"]) == ["a", "c"]
    ctx.put("a", "gone", type="DATA")
    ctx.remove("c")
    assert ctx.search("shared").empty and list(ctx.search("gone")["key"]) == ["a"]
    ctx.put("x", "shared", type="ENV")              # indexes are per type
    assert ctx.search("shared", type="DATA").empty
    assert list(ctx.search("shared", type="env")["key"]) == ["x"]


def test_keyword_of_mixed_case_key(ctx: Context) -> None:
    ctx.put("MixedCase", 1)
    ctx.put("mixedcase", 2)
    assert list(ctx.search("MIXEDCASE")["key"]) == ["MixedCase", "mixedcase"]
    assert ctx.get("MixedCase") == 1 and ctx.get("mixedcase") == 2  # keys stay exact


# ----------------------------------------------------------- registered value types


def test_registered_dataclass_rebuilt_after_reload(cache: ContextCache, ctx: Context) -> None:
    box = Box(Flight("AA", 1, ["JFK"]), [1, 2])
    ctx.put("box", box, type="OBJECT")
    cache.clear()
    again = ctx.get("box")
    assert again == box and isinstance(again.inner, Flight)
    assert again is not box


def test_register_value_type_needs_a_dataclass() -> None:
    with pytest.raises(ContextError, match="takes a dataclass"):
        register_value_type(int)
    with pytest.raises(ContextError, match="takes a dataclass"):
        register_value_type(Flight("AA", 1, []))  # an instance, not the class


def test_unregistered_tag_is_never_instantiated(cache: ContextCache, redis_client: redis.Redis,
                                                prefix: str) -> None:
    ek, _ = keys_of(prefix, "c")
    record = {"v": {"__cf_type__": "subprocess:Popen", "fields": {"args": ["touch", "x"]}},
              "k": ["evil"]}
    redis_client.hset(ek, "OBJECT\x1fp", json.dumps(record))
    ctx = cache.context("c")
    got = ctx.get("p")
    assert got == {"__cf_type__": "subprocess:Popen", "fields": {"args": ["touch", "x"]}}
    assert list(ctx.search("evil")["key"]) == ["p"]
    ctx.put("p2", got, type="OBJECT")  # the tagged form can be put back as it came
    assert ctx.get("p2") == got


def test_value_type_registered_later_is_rebuilt(cache: ContextCache, redis_client: redis.Redis,
                                                prefix: str) -> None:
    @dataclasses.dataclass
    class Late:
        x: int

    tag = f"{Late.__module__}:{Late.__qualname__}"
    redis_client.hset(keys_of(prefix, "c")[0], "OBJECT\x1fl",
                      json.dumps({"v": {"__cf_type__": tag, "fields": {"x": 1}}, "k": []}))
    ctx = cache.context("c")
    assert ctx.get("l") == {"__cf_type__": tag, "fields": {"x": 1}}
    register_value_type(Late)
    assert ctx.get("l") == Late(1)


def test_stored_fields_that_no_longer_fit_warn(cache: ContextCache, redis_client: redis.Redis,
                                               prefix: str) -> None:
    tag = f"{Flight.__module__}:{Flight.__qualname__}"
    redis_client.hset(keys_of(prefix, "c")[0], "OBJECT\x1ff",
                      json.dumps({"v": {"__cf_type__": tag, "fields": {"wings": 2}}, "k": []}))
    with pytest.warns(UserWarning, match="no longer fits"):
        got = cache.context("c").get("f")
    assert got == {"__cf_type__": tag, "fields": {"wings": 2}}


def test_corrupt_records_are_skipped_with_a_warning(cache: ContextCache,
                                                    redis_client: redis.Redis,
                                                    prefix: str) -> None:
    ek, _ = keys_of(prefix, "c")
    redis_client.hset(ek, mapping={
        "METADATA\x1fgood": json.dumps({"v": 1, "k": []}),
        "METADATA\x1fjunk": "not json",
        "NOSUCHTYPE\x1fk": json.dumps({"v": 1, "k": []}),
        "nofieldsep": json.dumps({"v": 1, "k": []}),
    })
    with pytest.warns(UserWarning, match="skipped hash field") as caught:
        ctx = cache.context("c")
        assert ctx.keys() == ["good"]
    assert len(caught) == 3
    ctx.put("junk", 2)  # putting the key again repairs it
    cache.clear()
    with pytest.warns(UserWarning, match="skipped hash field") as caught:
        assert ctx.get("junk") == 2
    assert len(caught) == 2


# ----------------------------------------------------------------- redis layout


def test_redis_key_layout(ctx: Context, redis_client: redis.Redis, prefix: str) -> None:
    ek, vk = keys_of(prefix, "analysis-42")
    assert ek == f"{prefix}:ctx:{{analysis-42}}:entries"
    ctx.put("owner", "Ana Lee", type="ENV", keywords=["Q3"])
    assert redis_client.type(ek) == b"hash"
    record = json.loads(redis_client.hget(ek, "ENV\x1fowner"))
    assert record == {"v": "Ana Lee", "k": ["ana", "lee", "q3"]}
    assert int(redis_client.get(vk)) == 1
    ctx.put_many({"a": 1, "b": 2})
    assert int(redis_client.get(vk)) == 2
    ctx.remove("a")
    assert int(redis_client.get(vk)) == 3
    index = {f"{prefix}:ctxkw:{{{w}}}" for w in ("owner", "ana", "lee", "q3", "b")}
    assert {k.decode() for k in redis_client.keys(f"{prefix}*")} == {ek, vk} | index
    assert redis_client.smembers(f"{prefix}:ctxkw:{{q3}}") == {b"analysis-42\x1fENV\x1fowner"}


def test_decoded_responses_client(redis_server, prefix: str) -> None:  # noqa: ANN001
    client = redis.Redis(unix_socket_path=str(redis_server.sock), decode_responses=True)
    cache = ContextCache(client, prefix=prefix)
    ctx = cache.context("c")
    ctx.put("k", "hello world")
    cache.clear()
    assert ctx.get("k") == "hello world" and list(ctx.search("world")["key"]) == ["k"]
    assert list(cache.contexts()["context_id"]) == ["c"]


# --------------------------------------------------------------------- metrics


def test_memory_metric_is_exact(ctx: Context, cache: ContextCache,
                                redis_client: redis.Redis, prefix: str) -> None:
    empty = ctx.info()["memory_bytes"]
    assert empty == expected_memory(redis_client, prefix, "analysis-42")
    ctx.put("café", "naïve text, more", keywords=["Ünï"])
    ctx.put("n", {"x": "a"}, type="DATA")
    info = ctx.info()
    assert info["memory_bytes"] == expected_memory(redis_client, prefix, "analysis-42")
    assert info["entries"] == 2 and info["per_type"] == {"METADATA": 1, "DATA": 1}
    assert cache.memory_bytes == info["memory_bytes"]
    ctx.put("n", {"x": "a" * 1000}, type="DATA")   # the value grows by 999 bytes
    assert ctx.info()["memory_bytes"] == info["memory_bytes"] + 999
    assert cache.memory_bytes == info["memory_bytes"] + 999
    ctx.remove("n")
    after = ctx.info()
    assert after["entries"] == 1
    assert after["memory_bytes"] == expected_memory(redis_client, prefix, "analysis-42")
    cache.clear()
    assert ctx.info()["memory_bytes"] == after["memory_bytes"]  # same after a reload
    ctx.clear()
    assert ctx.info()["memory_bytes"] == empty and ctx.info()["entries"] == 0


def test_access_count_per_operation(ctx: Context, cache: ContextCache) -> None:
    t0 = time.time()
    ops = [
        lambda: ctx.put("k", "v"), lambda: ctx.put_many({"a": 1}), lambda: ctx.get("k"),
        lambda: ctx.search("v"), lambda: ctx.items(), lambda: ctx.keys(), lambda: len(ctx),
        lambda: "k" in ctx, lambda: ctx.remove("a"), lambda: ctx.clear(type="ENV"),
        lambda: ctx.to_frame(), lambda: ctx["k"], lambda: iter(ctx),  # list() adds a len()
    ]
    for n, op in enumerate(ops, start=1):
        op()
        assert ctx.info()["accesses"] == n
    with pytest.raises(ContextKeyError):
        ctx["missing"]
    assert ctx.info()["accesses"] == len(ops) + 1
    repr(ctx), ctx._repr_html_(), ctx.info()
    assert ctx.info()["accesses"] == len(ops) + 1     # looking does not count
    assert t0 <= ctx.info()["last_access"] <= time.time()
    row = cache.contexts().set_index("context_id").loc["analysis-42"]
    assert row["accesses"] == len(ops) + 1 and row["entries"] == 1
    assert row["last_access"] >= pd.Timestamp(t0, unit="s", tz="UTC")


def test_contexts_frame(redis_client: redis.Redis, prefix: str) -> None:
    writer = ContextCache(redis_client, prefix=prefix)
    writer.context("b").put_many({"x": 1, "y": 2})
    writer.context("a").put("x", 1)
    reader = ContextCache(redis_client, prefix=prefix)
    reader.context("a").get("x")
    frame = reader.contexts()
    assert list(frame.columns) == ["context_id", "entries", "memory_bytes", "accesses",
                                   "last_access", "in_memory"]
    assert list(frame["context_id"]) == ["a", "b"]
    a, b = frame.to_dict("records")
    assert a["entries"] == 1 and a["accesses"] == 1 and a["in_memory"]
    assert a["memory_bytes"] == expected_memory(redis_client, prefix, "a")
    assert b["entries"] == 2 and b["accesses"] == 0 and not b["in_memory"]
    assert pd.isna(b["memory_bytes"]) and pd.isna(b["last_access"])
    assert list(reader.contexts(include_stored=False)["context_id"]) == ["a"]
    empty = ContextCache(redis_client, prefix=prefix + "z").contexts()
    assert empty.empty and list(empty.columns) == list(frame.columns)


def test_contexts_scan_escapes_glob_characters(redis_client: redis.Redis, prefix: str) -> None:
    ContextCache(redis_client, prefix=prefix + "a").context("x").put("k", 1)
    globby = ContextCache(redis_client, prefix=prefix + "?")
    assert globby.contexts().empty
    globby.context("y").put("k", 1)
    assert list(ContextCache(redis_client, prefix=prefix + "?").contexts()["context_id"]) == ["y"]


# ------------------------------------------------------------------------ LRU


def _one_context_size(redis_client: redis.Redis, prefix: str, value: str) -> int:
    probe = ContextCache(redis_client, prefix="P" + prefix[1:])  # same key lengths
    ctx = probe.context("ctx-a")
    ctx.put("k", {"v": value})
    return ctx.info()["memory_bytes"]


def test_lru_evicts_whole_contexts_in_order(redis_client: redis.Redis, prefix: str) -> None:
    size = _one_context_size(redis_client, prefix, "x" * 200)
    cache = ContextCache(redis_client, prefix=prefix, max_bytes=size * 2 + size // 2,
                         max_value_bytes=size)
    a, b, c = (cache.context(f"ctx-{n}") for n in "abc")
    a.put("k", {"v": "x" * 200})
    b.put("k", {"v": "y" * 200})
    assert in_memory(cache) == {"ctx-a", "ctx-b"}
    a.get("k")                                   # a is now the most recently used
    c.put("k", {"v": "z" * 200})
    assert in_memory(cache) == {"ctx-a", "ctx-c"}
    assert cache.memory_bytes == 2 * size <= cache.max_bytes
    b.get("k")                                   # reload b: evicts a, the LRU one
    assert in_memory(cache) == {"ctx-b", "ctx-c"}
    frame = cache.contexts()
    assert set(frame[~frame["in_memory"]]["context_id"]) == {"ctx-a"}


def test_growing_value_is_reaccounted_and_evicts(redis_client: redis.Redis, prefix: str) -> None:
    size = _one_context_size(redis_client, prefix, "x" * 200)
    cache = ContextCache(redis_client, prefix=prefix, max_bytes=size * 2 + size // 2,
                         max_value_bytes=size * 2)
    a, b = cache.context("ctx-a"), cache.context("ctx-b")
    a.put("k", {"v": "x" * 200})
    b.put("k", {"v": "y" * 200})
    assert in_memory(cache) == {"ctx-a", "ctx-b"}
    a.put("k", {"v": "x" * 250})                 # a grows by 50 bytes in place
    assert cache.memory_bytes == 2 * size + 50 <= cache.max_bytes
    assert in_memory(cache) == {"ctx-a", "ctx-b"}
    a.put("k", {"v": "x" * (200 + size)})        # now the two no longer fit: b goes
    assert in_memory(cache) == {"ctx-a"}
    assert cache.memory_bytes == a.info()["memory_bytes"] == 2 * size
    assert b.get("k") == {"v": "y" * 200}        # evicted contexts reload on use
    assert cache.memory_bytes <= cache.max_bytes


def test_memory_bound_under_a_small_budget(redis_client: redis.Redis, prefix: str) -> None:
    cache = ContextCache(redis_client, prefix=prefix, max_bytes=5_000, max_value_bytes=500)
    for i in range(60):
        cache.context(f"c{i}").put_many({f"k{j}": f"value {i} {j}" for j in range(5)})
        assert cache.memory_bytes <= 5_000
        frame = cache.contexts(include_stored=False)
        assert int(frame["memory_bytes"].sum()) == cache.memory_bytes
    loaded = in_memory(cache)
    assert 1 < len(loaded) < 60 and "c59" in loaded
    assert len(cache.contexts()) == 60


def test_context_bigger_than_budget_still_works(redis_client: redis.Redis, prefix: str) -> None:
    cache = ContextCache(redis_client, prefix=prefix, max_bytes=2_000, max_value_bytes=1_000)
    ctx = cache.context("big")
    for i in range(10):
        ctx.put(f"k{i}", {"v": "w" * 500})
    assert in_memory(cache) == set() and cache.memory_bytes == 0
    assert len(ctx) == 10 and ctx.get("k3") == {"v": "w" * 500}
    assert redis_client.hlen(keys_of(prefix, "big")[0]) == 10


def test_evicted_context_reloads_intact(redis_client: redis.Redis, prefix: str) -> None:
    cache = ContextCache(redis_client, prefix=prefix)
    ctx = cache.context("c", regex=r"\w+")
    ctx.put("f", Flight("AA", 1, ["JFK", "LAX"]), type="OBJECT", keywords=["Extra"])
    ctx.put_many({f"k{i}": f"word{i} common" for i in range(50)}, type="DATA")
    ctx.put("k0", "elsewhere", type="ENV")
    before = (ctx.to_frame(), ctx.search("common"), ctx.search("extra"), ctx.info())
    assert cache.invalidate("c") is True and cache.invalidate("c") is False
    assert in_memory(cache) == set()
    after = (ctx.to_frame(), ctx.search("common"), ctx.search("extra"), ctx.info())
    pd.testing.assert_frame_equal(before[0], after[0])
    pd.testing.assert_frame_equal(before[1], after[1])
    pd.testing.assert_frame_equal(before[2], after[2])
    assert after[3]["memory_bytes"] == before[3]["memory_bytes"]
    assert after[3]["entries"] == before[3]["entries"] == 52
    assert len(before[1]) == 50 and before[2].loc[0, "value"] == Flight("AA", 1, ["JFK", "LAX"])


def test_cache_clear_keeps_redis(cache: ContextCache, ctx: Context) -> None:
    ctx.put("k", 1)
    cache.clear()
    assert cache.memory_bytes == 0 and in_memory(cache) == set()
    assert ctx.get("k") == 1
    assert "1 context in memory" in repr(cache)


# --------------------------------------------------------------- cross-process freshness


def test_two_caches_see_each_other_immediately_with_zero_staleness(
        redis_client: redis.Redis, prefix: str) -> None:
    one = ContextCache(redis_client, prefix=prefix, staleness=0).context("s")
    two = ContextCache(redis_client, prefix=prefix, staleness=0).context("s")
    one.put("a", "from one")
    assert two.get("a") == "from one"
    two.put("a", "from two")
    two.put("b", "new")
    assert one.get("a") == "from two" and list(one.search("new")["key"]) == ["b"]
    one.remove("b")
    assert "b" not in two
    two.clear()
    assert len(one) == 0


def test_two_caches_see_changes_once_the_staleness_window_is_over(
        redis_client: redis.Redis, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = fake_clock(monkeypatch, context_module, entries_module)  # moved by the test only
    one = ContextCache(redis_client, prefix=prefix).context("s")
    cache = ContextCache(redis_client, prefix=prefix)
    two = cache.context("s")
    assert cache.staleness == 0.5  # the default
    assert len(one) == 0 and len(two) == 0
    one.put("k", "v1")
    clock.advance(0.4)
    assert "k" not in two  # within the window the loaded copy is trusted
    clock.advance(0.1)
    assert "k" in two and two.get("k") == "v1"


def test_cached_copy_is_trusted_within_staleness(redis_client: redis.Redis, prefix: str) -> None:
    reader_cache = ContextCache(redis_client, prefix=prefix, staleness=60)
    reader = reader_cache.context("s")
    writer = ContextCache(redis_client, prefix=prefix).context("s")
    writer.put("k", "v1")
    assert reader.get("k") == "v1"
    writer.put("k", "v2")
    assert reader.get("k") == "v1"           # within 60 s the loaded copy is served
    reader_cache.invalidate("s")
    assert reader.get("k") == "v2"


def test_own_write_after_foreign_write_forces_reload(redis_client: redis.Redis,
                                                     prefix: str) -> None:
    reader = ContextCache(redis_client, prefix=prefix, staleness=60).context("s")
    writer = ContextCache(redis_client, prefix=prefix).context("s")
    reader.put("mine", 1)
    writer.put("theirs", 2)
    reader.put("mine", 3)                     # the version jumped by 2: copy is stale
    assert reader.keys() == ["mine", "theirs"] and reader.get("theirs") == 2


CHILD = r"""
import sys, time
import redis
from chunkframe.contextcache import ContextCache
sock, prefix = sys.argv[1], sys.argv[2]
ctx = ContextCache(redis.Redis(unix_socket_path=sock), prefix=prefix).context("shared")
ctx.put("from_child", "hello from child")
print("put", flush=True)
assert sys.stdin.readline().strip() == "go"
start = time.monotonic()
while "from_parent" not in ctx:
    if time.monotonic() - start > 60:  # a bound against hangs, not a measurement
        print("timeout", flush=True)
        sys.exit(1)
    time.sleep(0.005)
print(f"seen {ctx.get('from_parent')}", flush=True)
"""


def test_a_second_process_sees_changes(redis_client: redis.Redis, prefix: str) -> None:
    """Across processes, through Redis; how soon (the staleness window) is the test above's."""
    sock = redis_client.connection_pool.connection_kwargs["path"]
    root = Path(context_module.__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get(
        "PYTHONPATH", "")]))
    ctx = ContextCache(redis_client, prefix=prefix).context("shared")
    assert len(ctx) == 0                          # loaded before the child writes
    child = subprocess.Popen([sys.executable, "-c", CHILD, sock, prefix], cwd=root, env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "put"
        start = time.monotonic()
        while "from_child" not in ctx:
            assert time.monotonic() - start < 60, "the child's put was never seen"
            time.sleep(0.005)
        assert ctx.get("from_child") == "hello from child"
        ctx.put("from_parent", "hello from parent")
        child.stdin.write("go\n")
        child.stdin.flush()
        line = child.stdout.readline().strip().split(maxsplit=1)
        assert line == ["seen", "hello from parent"], line
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# ----------------------------------------------------------------- redis failures


def test_redis_down_changes_nothing_locally(own_redis) -> None:  # noqa: ANN001
    client = redis.Redis(unix_socket_path=str(own_redis.sock), socket_timeout=2,
                         retry=Retry(NoBackoff(), 0))  # fail fast, not after retries
    cache = ContextCache(client, prefix="down", staleness=3600)
    ctx = cache.context("c")
    ctx.put("k", "before")
    memory = ctx.info()["memory_bytes"]
    checker = ContextCache(client, prefix="down", staleness=0).context("c")
    assert checker.get("k") == "before"
    own_redis.stop()
    with pytest.raises(BackendUnavailableError, match="could not write to context 'c'"):
        ctx.put("k", "after")
    with pytest.raises(BackendUnavailableError, match="could not remove 'k' from context 'c'"):
        ctx.remove("k")
    with pytest.raises(BackendUnavailableError, match="could not clear context 'c'"):
        ctx.clear()
    with pytest.raises(BackendUnavailableError, match="could not find keyword 'k'"):
        cache.find("k")
    with pytest.raises(BackendUnavailableError, match="could not index the contexts"):
        cache.reindex()
    with pytest.raises(BackendUnavailableError, match="could not check the version"):
        checker.get("k")
    with pytest.raises(BackendUnavailableError, match="could not load context 'other'"):
        cache.context("other").get("k")
    assert ctx.get("k") == "before" and ctx.info()["memory_bytes"] == memory
    assert "not loaded" in repr(cache.context("other"))
    assert "not loaded" in cache.context("other")._repr_html_()
    own_redis.start()
    fresh = ContextCache(redis.Redis(unix_socket_path=str(own_redis.sock)), prefix="down")
    assert fresh.context("c").get("k") == "before"


# ----------------------------------------------------------------------- threads


def test_eight_threads_on_one_context(redis_client: redis.Redis, prefix: str) -> None:
    cache = ContextCache(redis_client, prefix=prefix)
    ctx = cache.context("shared")

    def work(t: int) -> None:
        for i in range(40):
            ctx.put(f"t{t}-{i}", f"thread{t} item{i}", type=ALL_TYPES[t])
            assert ctx.get(f"t{t}-{i}") == f"thread{t} item{i}"
            assert len(ctx.search(f"thread{t}")) == i + 1 - i // 4
            if i % 4 == 3:
                ctx.remove(f"t{t}-{i}", type=ALL_TYPES[t])

    assert run_threads(work) == []
    info = ctx.info()
    assert info["entries"] == 8 * 30
    assert info["accesses"] == 8 * (40 * 3 + 10)
    assert info["per_type"] == {t: 30 for t in ALL_TYPES}
    assert info["memory_bytes"] == expected_memory(redis_client, prefix, "shared")
    cache.clear()
    assert len(ctx) == 240 and len(ctx.search("thread5")) == 30


def test_eight_threads_with_eviction(redis_client: redis.Redis, prefix: str) -> None:
    cache = ContextCache(redis_client, prefix=prefix, max_bytes=6_000, max_value_bytes=1_000)

    def work(t: int) -> None:
        for i in range(60):
            ctx = cache.context(f"c{(t + i) % 16}")
            ctx.put(f"t{t}-{i}", f"w{t} {i}")
            assert ctx.get(f"t{t}-{i}") == f"w{t} {i}"
            assert cache.memory_bytes <= cache.max_bytes

    assert run_threads(work) == []
    frame = cache.contexts(include_stored=False)
    assert int(frame["memory_bytes"].sum()) == cache.memory_bytes <= cache.max_bytes
    fresh = ContextCache(redis_client, prefix=prefix)
    total = sum(len(fresh.context(f"c{n}")) for n in range(16))
    assert total == 8 * 60
    for cid in frame["context_id"]:
        assert frame.set_index("context_id").loc[cid, "entries"] == len(fresh.context(cid))


# ----------------------------------------------------------------- put_many, repr


def test_put_many_forms_and_atomic_validation(ctx: Context, redis_client: redis.Redis,
                                              prefix: str) -> None:
    assert ctx.put_many({"a": "x y", "b": 2}, type="DATA", keywords=["batch"]) == 2
    assert ctx.put_many([("c", 3), ("d", 4, ["own"])], type="ENV") == 2
    assert ctx.put_many([]) == 0
    assert list(ctx.search("batch")["key"]) == ["a", "b"]
    assert list(ctx.search("own")["key"]) == ["d"] and list(ctx.search("y")["key"]) == ["a"]
    version = int(redis_client.get(keys_of(prefix, "analysis-42")[1]))
    assert version == 2
    with pytest.raises(ContextError, match="key 'f'"):
        ctx.put_many([("e", 5), ("f", {6})])
    with pytest.raises(ContextError, match=r"\(key, value\)"):
        ctx.put_many(["just-a-key"])
    with pytest.raises(ContextError, match=r"\(key, value\)"):
        ctx.put_many("ab")
    assert len(ctx) == 4 and "e" not in ctx
    assert int(redis_client.get(keys_of(prefix, "analysis-42")[1])) == version


def test_repr_and_html(ctx: Context, cache: ContextCache) -> None:
    for i in range(8):
        ctx.put(f"<b>k{i}</b>", {"v": "<script>" + "x" * 100}, type="DATA" if i % 2 else "ENV")
    text = repr(ctx)
    assert text.startswith("<Context 'analysis-42': 8 entries (DATA 4, ENV 4), ")
    page = ctx._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("&lt;b&gt;k") == 5 and "3 more" in page
    assert "analysis-42" in page and "DATA" in page
    assert "ContextCache prefix=" in repr(cache)
    empty = cache.context("empty")
    base = sum(len(k) for k in keys_of(cache.prefix, "empty"))
    assert repr(empty) == f"<Context 'empty': 0 entries, {base} B>"
    assert "more" not in empty._repr_html_()


def test_contains_is_false_for_non_keys(ctx: Context) -> None:
    ctx.put("k", 1)
    assert "k" in ctx and "K" not in ctx
    assert 1 not in ctx and "" not in ctx and None not in ctx


def test_handles_compare_by_cache_and_id(cache: ContextCache, redis_client: redis.Redis,
                                         prefix: str) -> None:
    assert cache.context("a") == cache.context("a", regex=r"\w+")
    assert cache.context("a") != cache.context("b")
    assert cache.context("a") != ContextCache(redis_client, prefix=prefix).context("a")
    assert len({cache.context("a"), cache.context("a")}) == 1


def test_failed_operations_still_evict_back_under_the_budget(redis_client: redis.Redis,
                                                             prefix: str) -> None:
    writer = ContextCache(redis_client, prefix=prefix)
    for i in range(3):
        writer.context(f"c{i}").put_many({f"k{j}": "x" * 200 for j in range(50)})
    size = writer.context("c0").info()["memory_bytes"]
    cache = ContextCache(redis_client, prefix=prefix, max_bytes=int(size * 1.5),
                         max_value_bytes=1_000)
    cache.context("c0").get("k0")
    for cid in ("c1", "c2"):
        with pytest.raises(KeyError):
            cache.context(cid).remove("missing")
        assert cache.memory_bytes <= cache.max_bytes
    with pytest.raises(ContextError):
        cache.context("c1").put_many([("ok", 1), ("bad", {1, 2})])
    assert cache.memory_bytes <= cache.max_bytes
