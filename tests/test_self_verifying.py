"""Self-verifying chunks: files name themselves, and disagreement is repaired or refused."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import chunkframe as cf
from chunkframe.core.errors import ChunkCorruptionError, StateCorruptionError
from chunkframe.core.model import ChunkMeta
from chunkframe.storage.codec import decode, encode, identity_of

ROWS, CHUNK = 100_000, 10_000


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"id": np.arange(ROWS, dtype=np.int64),
                         "x": np.arange(ROWS, dtype=np.float64) / 2})


@pytest.fixture
def ds(client, frame):
    return client.ingest(frame, "selfcheck", chunk_rows=CHUNK, progress=False)


def fresh(client) -> cf.Dataset:
    """The dataset through a client with empty caches (as another process sees it)."""
    client.reader.clear()
    return client.open("selfcheck")


def redis_chunk(client, n: int) -> ChunkMeta:
    keys = client.state.keys("selfcheck")
    return ChunkMeta.from_json(client.redis.hget(keys.chunks(1), n))


def set_redis_chunk(client, n: int, **changes) -> None:
    keys = client.state.keys("selfcheck")
    d = json.loads(client.redis.hget(keys.chunks(1), n))
    d.update(changes)
    client.redis.hset(keys.chunks(1), n, json.dumps(d))


def test_every_chunk_file_names_its_dataset_generation_chunk_start_and_rows(client, ds):
    for n in range(ROWS // CHUNK):
        cm = redis_chunk(client, n)
        table = decode(client.store.read(cm.key))
        assert identity_of(table.schema) == {"dataset": "selfcheck", "generation": 1,
                                             "chunk": n, "start": n * CHUNK, "rows": CHUNK}
    assert identity_of(pa.schema([("a", pa.int64())])) is None  # chunks written before


def test_a_shifted_start_in_redis_is_repaired_never_serving_the_neighbouring_row(client, ds):
    set_redis_chunk(client, 7, start=69_990)
    d = fresh(client)
    assert d.get(70_000)["id"] == 70_000
    assert d.get_many([69_995, 70_000, 70_005])["id"].tolist() == [69_995, 70_000, 70_005]
    assert redis_chunk(client, 7).start == 70_000  # Redis was rebuilt from the catalog


def test_a_start_shifted_consistently_is_caught_by_the_file_and_repaired(client, ds):
    # tiles still (chunk 6 shrunk, chunk 7 starts earlier): only the file can tell
    set_redis_chunk(client, 6, rows=CHUNK - 10)
    set_redis_chunk(client, 7, start=69_990, rows=CHUNK + 10)
    d = fresh(client)
    assert d.get(70_000)["id"] == 70_000
    assert redis_chunk(client, 7).start == 70_000


def test_inflated_rows_in_redis_are_repaired(client, ds):
    set_redis_chunk(client, 9, rows=CHUNK * 3)
    d = fresh(client)
    assert d.get(ROWS - 1)["id"] == ROWS - 1
    assert len(d.slice(85_000, 100_000)) == 15_000
    assert redis_chunk(client, 9).rows == CHUNK


@pytest.mark.parametrize("garbage", [b"{not json", b"[]", b'{"chunk": 3}'])
def test_garbage_in_a_redis_chunk_entry_reads_from_the_catalog(client, ds, garbage):
    keys = client.state.keys("selfcheck")
    client.redis.hset(keys.chunks(1), 3, garbage)
    d = fresh(client)
    assert d.get(35_000)["id"] == 35_000
    assert redis_chunk(client, 3).start == 30_000


def test_garbage_in_a_redis_meta_field_reads_from_the_catalog(client, ds):
    keys = client.state.keys("selfcheck")
    client.redis.hset(keys.meta, "generation", b"oops")
    client.redis.hset(keys.meta, "rows", b"{")
    d = fresh(client)
    assert d.get(12_345)["id"] == 12_345
    assert client.state.meta("selfcheck").rows == ROWS


def test_state_reads_of_garbage_raise_state_corruption_naming_the_entry(client, ds):
    keys = client.state.keys("selfcheck")
    client.redis.hset(keys.chunks(1), 3, b"{not json")
    with pytest.raises(StateCorruptionError, match=r"'selfcheck'.*entry '3'.*recover"):
        client.state.chunk_metas("selfcheck", 1)
    client.redis.hset(keys.meta, "rows", b"{")
    with pytest.raises(StateCorruptionError, match=r"'selfcheck'.*is not dataset metadata"):
        client.state.meta("selfcheck")
    assert issubclass(StateCorruptionError, cf.ChunkFrameError)


def replace_chunk_file(client, n: int, table: pa.Table, identity: dict) -> None:
    """Put a well-formed chunk file naming ``identity`` at chunk ``n``'s key, with its
    checksum and size recorded in the catalog and Redis alike (they agree; the file not)."""
    cm = redis_chunk(client, n)
    from chunkframe.storage.codec import write
    digest, size = client.store.write(cm.key, lambda f: write(table, f, None, identity))
    with client.catalog._transaction() as db:
        db.execute("UPDATE chunks SET checksum=?, nbytes=? WHERE dataset=? AND chunk=?",
                   (digest, size, "selfcheck", n))
    set_redis_chunk(client, n, checksum=digest, nbytes=size)


def test_a_file_disagreeing_with_redis_and_catalog_alike_is_never_served(client, ds, frame):
    other = decode(client.store.read(redis_chunk(client, 6).key))
    replace_chunk_file(client, 7, other, {"dataset": "selfcheck", "generation": 1, "chunk": 6,
                                          "start": 60_000, "rows": CHUNK})
    d = fresh(client)
    with pytest.raises(ChunkCorruptionError, match=r"chunk 7 of dataset 'selfcheck'.*chunk 6 in "
                                                   r"the file, 7 in the chunk table.*start 60000"):
        d.get(70_000)
    assert d.get(69_999)["id"] == 69_999  # the other chunks still read
    report = d.verify()
    assert report["chunk"].tolist() == [7]
    assert "disagree" in report["problem"][0]


def test_verify_reports_a_file_naming_another_dataset(client, ds):
    table = decode(client.store.read(redis_chunk(client, 2).key))
    replace_chunk_file(client, 2, table, {"dataset": "elsewhere", "generation": 1, "chunk": 2,
                                          "start": 20_000, "rows": CHUNK})
    report = fresh(client).verify()
    assert report["chunk"].tolist() == [2]
    assert "dataset 'elsewhere' in the file" in report["problem"][0]


def test_an_unreadable_identity_names_nothing_and_is_refused(client, ds):
    table = decode(client.store.read(redis_chunk(client, 1).key))
    meta = dict(table.schema.metadata or {})
    meta[b"chunkframe.chunk"] = b"{broken"
    data = encode(table.replace_schema_metadata(meta))
    assert identity_of(decode(data).schema) == {}
    cm = redis_chunk(client, 1)
    from chunkframe.storage.codec import checksum
    client.store.put(cm.key, data)
    with client.catalog._transaction() as db:
        db.execute("UPDATE chunks SET checksum=?, nbytes=? WHERE dataset=? AND chunk=?",
                   (checksum(data), len(data), "selfcheck", 1))
    set_redis_chunk(client, 1, checksum=checksum(data), nbytes=len(data))
    with pytest.raises(ChunkCorruptionError, match="disagree"):
        fresh(client).get(10_000)


def test_a_checksum_altered_in_redis_only_is_repaired_from_the_catalog(client, ds):
    set_redis_chunk(client, 4, checksum="crc32c:00000000")
    assert fresh(client).get(40_001)["id"] == 40_001
    assert redis_chunk(client, 4).checksum != "crc32c:00000000"
