"""Tests of cf.find: the keyword index across contexts, kept in Redis with the entries."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pandas as pd
import pytest
import redis

import chunkframe as cf
from chunkframe.contextcache import ContextCache, keyword, register_value_type
from chunkframe.contextcache.index import FIND_COLUMNS, index_key
from chunkframe.core.errors import ContextError


@register_value_type
@dataclasses.dataclass
class Run:
    name: str

    @keyword
    def label(self) -> str:
        return f"run-{self.name}"


@pytest.fixture
def cache(redis_client: redis.Redis, prefix: str) -> ContextCache:
    return ContextCache(redis_client, prefix=prefix)


def hits(frame: pd.DataFrame) -> set[tuple[str, str, str]]:
    assert list(frame.columns) == FIND_COLUMNS
    return {(c, t, k) for c, t, k in zip(frame["context"], frame["type"], frame["key"],
                                         strict=True)}


def test_find_after_puts_in_several_contexts(cache: ContextCache) -> None:
    cache.context("flights").put("owner", "Ana Lee, data team", keywords=["Q3"])
    cache.context("sensors").put("owner", "Bo, ops team")
    cache.context("sensors").put("team", {"size": 4}, type="ENV")
    cache.context("analysis-42").put("run", Run("ana"), type="OBJECT")
    cache.context("analysis-42").put_many({"a": "team a", "b": "team b"}, type="VARIABLE")
    found = cache.find("TEAM")
    assert hits(found) == {("flights", "METADATA", "owner"), ("sensors", "METADATA", "owner"),
                           ("sensors", "ENV", "team"), ("analysis-42", "VARIABLE", "a"),
                           ("analysis-42", "VARIABLE", "b")}
    assert list(found["context"]) == ["analysis-42", "analysis-42", "flights", "sensors",
                                      "sensors"]   # by context, then type order, then key
    assert list(found.loc[found["context"] == "sensors", "type"]) == ["METADATA", "ENV"]
    assert found.loc[found["key"] == "team", "value"].item() == {"size": 4}
    assert hits(cache.find("q3")) == {("flights", "METADATA", "owner")}
    assert cache.find("run-ana")["value"].item() == Run("ana")   # @keyword result, decoded
    assert hits(cache.find("team", type="variable")) == {("analysis-42", "VARIABLE", "a"),
                                                         ("analysis-42", "VARIABLE", "b")}


def test_find_after_replace_remove_and_clear(cache: ContextCache) -> None:
    a, b = cache.context("a"), cache.context("b")
    a.put("owner", "ana lee")
    b.put("owner", "ana")
    b.put("note", "ana", type="DATA")
    assert hits(cache.find("ana")) == {("a", "METADATA", "owner"), ("b", "METADATA", "owner"),
                                       ("b", "DATA", "note")}
    a.put("owner", "lee only")                        # replaced: "ana" left the value
    assert hits(cache.find("ana")) == {("b", "METADATA", "owner"), ("b", "DATA", "note")}
    assert hits(cache.find("lee")) == {("a", "METADATA", "owner")}
    b.remove("owner")
    assert hits(cache.find("ana")) == {("b", "DATA", "note")}
    assert hits(cache.find("owner")) == {("a", "METADATA", "owner")}   # the key's own keyword
    b.put("owner", "ana")
    b.clear(type="DATA")
    assert hits(cache.find("ana")) == {("b", "METADATA", "owner")}
    b.clear()
    a.clear()
    for word in ("ana", "lee", "owner", "only", "note"):
        assert cache.find(word).empty
    assert not cache.redis.keys(f"{cache.prefix}:ctxkw:*")   # empty sets are gone


def test_non_ascii_keys_and_keywords_stay_indexed(cache: ContextCache,
                                                  redis_client: redis.Redis) -> None:
    ctx = cache.context("ü-ctx")
    ctx.put("Ärger", "smile 😀 naïve \x1e ctl", keywords=["🎉 Party", "a/b"])
    for word in ("ärger", "😀", "naïve", "🎉 party", "a/b"):
        assert hits(cache.find(word)) == {("ü-ctx", "METADATA", "Ärger")}, word
    ctx.put("Ärger", "plain")
    assert cache.find("😀").empty and hits(cache.find("Plain")) == {("ü-ctx", "METADATA", "Ärger")}
    ctx.remove("Ärger")
    assert not redis_client.keys(f"{cache.prefix}:ctxkw:*")


def test_find_sees_another_clients_writes_at_once(redis_client: redis.Redis, prefix: str,
                                                  redis_server) -> None:  # noqa: ANN001
    mine = ContextCache(redis_client, prefix=prefix, staleness=3600)
    theirs = ContextCache(redis.Redis(unix_socket_path=str(redis_server.sock),
                                      decode_responses=True), prefix=prefix, staleness=3600)
    mine.context("shared").put("owner", "ana")
    assert hits(theirs.find("ana")) == {("shared", "METADATA", "owner")}
    theirs.context("shared").put("owner", "bo")        # replaces mine, from the other client
    assert mine.find("ana").empty and hits(mine.find("bo")) == {("shared", "METADATA", "owner")}
    theirs.context("other").put("k", "bo")
    mine.context("shared").remove("owner")            # mine's copy is stale; Redis is not
    assert hits(theirs.find("bo")) == {("other", "METADATA", "k")}


def test_find_from_two_processes(redis_client: redis.Redis, prefix: str) -> None:
    sock = redis_client.connection_pool.connection_kwargs["path"]
    child = (
        "import sys, redis\n"
        "from chunkframe.contextcache import ContextCache\n"
        "c = ContextCache(redis.Redis(unix_socket_path=sys.argv[1]), prefix=sys.argv[2])\n"
        "c.context('child').put('origin', 'written by the child process')\n"
    )
    subprocess.run([sys.executable, "-c", child, sock, prefix], check=True, timeout=60)
    cache = ContextCache(redis_client, prefix=prefix)
    cache.context("parent").put("origin", "written by the parent process")
    assert hits(cache.find("process")) == {("child", "METADATA", "origin"),
                                           ("parent", "METADATA", "origin")}


def test_missing_keyword_is_an_empty_frame_with_the_columns(cache: ContextCache) -> None:
    found = cache.find("nothing-like-this")
    assert found.empty and list(found.columns) == FIND_COLUMNS
    cache.context("c").put("k", "v", type="DATA")
    assert cache.find("k", type="METADATA").empty


@pytest.mark.parametrize("word", ["", "   ", None, 3, ["a"]])
def test_bad_keyword_raises(cache: ContextCache, word: object) -> None:
    with pytest.raises(ContextError, match="find\\(\\) takes a non-empty keyword string"):
        cache.find(word)  # type: ignore[arg-type]


def test_bad_type_raises(cache: ContextCache) -> None:
    with pytest.raises(ContextError, match="unknown context type 'bogus'"):
        cache.find("k", type="bogus")


def test_stale_index_members_are_not_returned(cache: ContextCache,
                                              redis_client: redis.Redis) -> None:
    cache.context("c").put("k", "word")
    # members that no entry backs (an older chunkframe, a hand edit): skipped, not raised
    redis_client.sadd(index_key(cache.prefix, "word"), "c\x1fMETADATA\x1fgone",
                      "c\x1fDATA\x1fk", "junk", "c\x1fNOTATYPE\x1fk")
    redis_client.hset(f"{cache.prefix}:ctx:{{c}}:entries", "DATA\x1fk", "not json")
    assert hits(cache.find("word")) == {("c", "METADATA", "k")}
    # a record that looks like an object but is not JSON, and one that is not an object
    redis_client.sadd(index_key(cache.prefix, "word"), "c\x1fDATA\x1fb", "c\x1fDATA\x1fa")
    redis_client.hset(f"{cache.prefix}:ctx:{{c}}:entries", mapping={
        "DATA\x1fb": '{"v": broken', "DATA\x1fa": '["word"]'})
    assert hits(cache.find("word")) == {("c", "METADATA", "k")}


def test_long_string_value_is_stored_once(cache: ContextCache, redis_client: redis.Redis
                                          ) -> None:
    """Issue 14: a 900 kB string was refused as 1.8 MB, its automatic keyword copying it."""
    ctx = cache.context("big")
    ctx.put("blob", "x" * 900_000 + " tail")
    record = redis_client.hget(f"{cache.prefix}:ctx:{{big}}:entries", "METADATA\x1fblob")
    assert len(record) < 900_100 and json.loads(record)["k"] == ["tail"]
    assert hits(cache.find("tail")) == {("big", "METADATA", "blob")}
    assert ctx.search("x" * 300).empty            # a word over 256 characters is no keyword
    ctx.put("word", "y" * 256)
    assert hits(cache.find("y" * 256)) == {("big", "METADATA", "word")}


def test_reindex_finds_entries_written_without_the_index(cache: ContextCache,
                                                          redis_client: redis.Redis) -> None:
    cache.context("old").put_many({"owner": "ana lee", "note": "Ana"})
    cache.context("new").put("owner", "ana", type="ENV")
    for key in redis_client.keys(f"{cache.prefix}:ctxkw:*"):   # as an older version left it
        redis_client.delete(key)
    assert cache.find("ana").empty
    assert cache.reindex() == 2
    want = {("old", "METADATA", "owner"), ("old", "METADATA", "note"), ("new", "ENV", "owner")}
    assert hits(cache.find("ana")) == want
    assert cache.reindex() == 2 and hits(cache.find("ana")) == want   # idempotent
    assert ContextCache(redis_client, prefix=cache.prefix + "x").reindex() == 0


def test_cf_find_and_client_find(client) -> None:  # noqa: ANN001
    client.context("analysis-42").put("question", "does humidity drive failures?")
    cf.context("notes").put("humidity", "high in March", type="DATA")
    assert hits(cf.find("Humidity")) == {("analysis-42", "METADATA", "question"),
                                         ("notes", "DATA", "humidity")}
    assert hits(client.find("humidity", type="DATA")) == {("notes", "DATA", "humidity")}
    assert "find" in cf.__all__ and "find" in dir(cf)
    with pytest.raises(ContextError, match="unknown context type"):
        cf.find("humidity", type="nope")
