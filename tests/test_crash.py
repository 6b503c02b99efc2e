"""Crash safety: an ingest killed with SIGKILL at 20+ moments, resumed each time, ends up
identical to an uninterrupted ingest — no lost, duplicated or re-cut rows, no debris."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from crash_worker import source_frame

import chunkframe as cf
from chunkframe.core.keys import RedisKeys
from chunkframe.storage.catalog import Catalog

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
ROWS, CHUNK_ROWS = 200_000, 5_000
CHUNKS = ROWS // CHUNK_ROWS
DATASET = "crashy"
CHUNK_STEPS = ["put-start", "fsync", "put-done", "ckpt-start", "ckpt-done"]
COMMIT_STEPS = ["commit-start", "commit-tx", "commit-done", "publish-done"]


@dataclass
class Round:
    """One run of the worker and what the test saw of it."""

    target: str  # a step name, or "random"
    k: int = 1
    delay: float = 0.0
    lines: list[str] = field(default_factory=list)
    killed: bool = False
    returncode: int | None = None


class Harness:
    def __init__(self, tmp_path: Path, redis_url: str, prefix: str):
        self.root = tmp_path
        self.env = dict(os.environ, CF_REDIS=redis_url, CF_PREFIX=prefix,
                        CF_STORE=str(tmp_path / "store"), CF_CATALOG=str(tmp_path / "catalog.db"),
                        CF_HOME=str(tmp_path), CF_ROWS=str(ROWS), CF_CHUNK_ROWS=str(CHUNK_ROWS),
                        CF_LOCK_TTL="1", CF_WORKERS="2")
        self.keys = RedisKeys(prefix, DATASET)
        self.redis = cf.connect(store=tmp_path / "store", redis=redis_url,
                                catalog=tmp_path / "catalog.db", home=tmp_path,
                                prefix=prefix).redis

    def run(self, rnd: Round) -> Round:
        pause = f"{rnd.target}:{rnd.k}" if rnd.target != "random" else ""
        with open(self.root / "worker.err", "w") as err:
            proc = subprocess.Popen(
                [sys.executable, str(HERE / "crash_worker.py"), "ingest", DATASET],
                env=dict(self.env, CF_PAUSE=pause), stdout=subprocess.PIPE, stderr=err, text=True,
            )
        watchdog = threading.Timer(60, proc.kill)  # never hang the suite on a stuck worker
        watchdog.start()
        assert proc.stdout is not None
        try:
            seen = 0
            for line in proc.stdout:
                line = line.strip()
                rnd.lines.append(line)
                if rnd.target == "random" and line.startswith("locked"):
                    time.sleep(rnd.delay)  # the random moment of the kill
                    break
                if line.split(" ")[0] == rnd.target:
                    seen += 1
                    if seen == rnd.k:
                        break  # the worker sleeps right after printing this line
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
            rnd.lines += [x.strip() for x in proc.stdout]
        finally:
            watchdog.cancel()
            proc.stdout.close()
        rnd.returncode = proc.returncode
        rnd.killed = proc.returncode == -signal.SIGKILL and not any(
            x.startswith("done") for x in rnd.lines)
        if proc.returncode not in (0, -signal.SIGKILL):
            raise AssertionError(f"worker failed ({proc.returncode}):\n"
                                 + (self.root / "worker.err").read_text()[-3000:])
        return rnd

    def status(self) -> dict[bytes, bytes]:
        return self.redis.hgetall(self.keys.ingest)

    def checkpointed(self) -> int:
        st = self.status()
        return self.redis.hlen(self.keys.chunks(int(st[b"generation"]))) if st else 0

    def files(self) -> list[str]:
        base = self.root / "store"
        return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


def test_kill_9_at_twenty_moments_then_resume_equals_an_uninterrupted_ingest(
        tmp_path, redis_server, prefix):
    h = Harness(tmp_path, redis_server.url, prefix)
    rng = random.Random(8086)
    rounds: list[Round] = []
    kinds_pending = list(CHUNK_STEPS)  # every chunk-level moment at least once

    # 1. kills while chunks are persisted and checkpointed
    catalog = Catalog(tmp_path / "catalog.db")
    while sum(r.killed for r in rounds) < 17 and CHUNKS - h.checkpointed() > 4:
        assert catalog.get(DATASET) is None, "the ingest completed before the kills were done"
        assert len(rounds) < 40, [(r.target, r.k, r.killed) for r in rounds]
        if kinds_pending and rng.random() < 0.7:
            rnd = Round(kinds_pending.pop(rng.randrange(len(kinds_pending))), rng.randint(1, 2))
        elif rng.random() < 0.5:
            rnd = Round("random", delay=rng.uniform(0.0, 0.02))  # a whole run takes ~0.2 s
        else:
            rnd = Round(rng.choice(CHUNK_STEPS), rng.randint(1, 3))
        before = h.checkpointed()
        h.run(rnd)
        rounds.append(rnd)
        if not rnd.killed:
            continue
        if rnd.target == "fsync":  # killed between writing a temp file and renaming it
            assert any(f.endswith(".partial") for f in h.files()), rnd.lines[-5:]
        if rnd.target == "put-done":  # persisted, not checkpointed: the file is an orphan
            key = [x for x in rnd.lines if x.startswith("put-done")][rnd.k - 1].split()[1]
            chunk = int(key.rsplit("/c", 1)[1][:8])
            assert key in h.files()
            assert not h.redis.hexists(h.keys.chunks(int(h.status()[b"generation"])), chunk)
        assert h.checkpointed() >= before  # a checkpoint, once acknowledged, stays
    assert not kinds_pending, "every chunk-level kill moment was exercised"

    # 2. kills around the commit: inside the catalog transaction, after it, after publish
    for step in ["commit-start", "commit-tx", "commit-done", "publish-done"]:
        rnd = h.run(Round(step))
        rounds.append(rnd)
        assert rnd.killed, f"{step}: the worker was not killed there ({rnd.lines[-3:]})"
        complete = catalog.get(DATASET) is not None
        assert complete == (step in ("commit-done", "publish-done")), step
        assert bool(h.status()) == (step != "publish-done"), step

    # 3. the last run finds the dataset complete
    final = h.run(Round("none"))
    assert final.returncode == 0 and final.lines[-1] == f"done {ROWS}", final.lines[-5:]
    kills = sum(r.killed for r in rounds)
    assert kills >= 20, [(r.target, r.k, r.killed) for r in rounds]

    # the dataset equals its source: no lost, duplicated or reordered rows
    client = cf.connect(store=tmp_path / "store", redis=redis_server.url,
                        catalog=tmp_path / "catalog.db", home=tmp_path, prefix=prefix)
    ds = client.open(DATASET)
    src = source_frame(ROWS)
    out = ds.to_pandas()
    assert out["id"].is_unique and out["id"].tolist() == list(range(ROWS))
    pd.testing.assert_frame_equal(out, src)
    assert ds.verify(progress=False).empty

    # same chunk boundaries and bytes as an ingest that was never interrupted
    # (under the same id and generation, elsewhere: a chunk file names its dataset)
    elsewhere = cf.connect(store=tmp_path / "clean" / "store", redis=redis_server.url,
                           catalog=tmp_path / "clean" / "catalog.db", home=tmp_path / "clean",
                           prefix=prefix + "-clean")
    clean = elsewhere.ingest(src, DATASET, chunk_rows=CHUNK_ROWS, progress=False)
    cols = ["start", "rows", "checksum", "bytes"]
    pd.testing.assert_frame_equal(ds.chunks[cols], clean.chunks[cols])
    assert len(ds.chunks) == CHUNKS

    # no debris: one generation of chunk files, no temp files, no stale Redis or catalog state
    gen = ds.meta.generation
    assert [f for f in h.files() if f.startswith(f"{DATASET}/")] == sorted(ds.chunks["key"])
    assert all(k.startswith(f"{DATASET}/g{gen:06d}/") for k in ds.chunks["key"])
    assert not [f for f in h.files() if f.endswith(".partial")]
    assert not h.redis.exists(h.keys.ingest)
    chunk_hashes = sorted(k.decode() for k in h.redis.scan_iter(match=f"{h.keys.base}:g*:chunks"))
    assert chunk_hashes == [h.keys.chunks(gen)]
    assert h.redis.hlen(h.keys.chunks(gen)) == CHUNKS
    with sqlite3.connect(tmp_path / "catalog.db") as db:
        gens = db.execute("SELECT DISTINCT generation FROM chunks WHERE dataset=?",
                          (DATASET,)).fetchall()
    assert gens == [(gen,)]
