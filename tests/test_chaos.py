"""Chaos: a seeded loop of real faults -- kill -9 of ingesters, appenders and the Redis
server, damaged Redis entries and catalog pages, a lost catalog (with Redis too), a full
disk under the store -- each followed by `chunkframe recover --apply`; every dataset must
match its pandas model, and every fault must surface as a chunkframe error while broken.

Reproduce a run with the seed it prints: ``CF_CHAOS_SEED=<seed> pytest tests/test_chaos.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from crash_worker import source_frame
from servers import RedisProcess

import chunkframe as cf
from chunkframe.frontends.cli import main

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
ROWS, CHUNK = 3_000, 500  # of each ingest and each append
ROUNDS = int(os.environ.get("CF_CHAOS_ROUNDS", "20"))
BUDGET = 150.0  # seconds: rounds stop starting after this (the test stays under 3 minutes)
STEPS = ["locked", "put-done", "ckpt-done", "ckpt-done", "commit-tx", "commit-done",
         "publish-done"]
FAULTS = ["kill_ingest", "kill_append", "kill_redis", "corrupt_redis", "catalog_pages",
          "catalog_deleted", "catalog_and_redis_lost", "full_disk"]


class Chaos:
    """The installation under attack, the models of its datasets and what was seen."""

    def __init__(self, root: Path, rng: random.Random, seed: int) -> None:
        self.root, self.rng, self.seed = root, rng, seed
        self.redis = RedisProcess().start()
        self.store = root / "store"
        self.store.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs",
                               str(self.store)], capture_output=True, text=True)
        self.disk = None if done.returncode == 0 else (
            f"full_disk skipped: cannot mount a tmpfs as the store ({done.stderr.strip()}); "
            "it needs root")
        self.catalog = root / "catalog.db"
        self.prefix = f"c{uuid.uuid4().hex[:8]}"
        self.env = dict(os.environ, CF_REDIS=self.redis.url, CF_PREFIX=self.prefix,
                        CF_STORE=str(self.store), CF_CATALOG=str(self.catalog),
                        CF_HOME=str(root), CF_ROWS=str(ROWS), CF_CHUNK_ROWS=str(CHUNK),
                        CF_LOCK_TTL="5", CF_WORKERS="2")
        self.models: dict[str, pd.DataFrame] = {}
        self.seen: Counter[str] = Counter()
        self.wrong = self.lost = 0

    def close(self) -> None:
        self.redis.stop()
        if self.disk is None:
            subprocess.run(["umount", "-l", str(self.store)], check=False)

    def client(self) -> cf.Client:
        return cf.connect(store=self.store, redis=self.redis.url, catalog=self.catalog,
                          home=self.root, prefix=self.prefix)

    # -- workers --------------------------------------------------------------------------
    def worker(self, *args: str, kill_at: str = "") -> tuple[bool, str]:
        """Run crash_worker with ``args``; kill -9 it at step ``kill_at`` ("STEP:K").
        Returns (killed, the last line of its stderr)."""
        proc = subprocess.Popen([sys.executable, str(HERE / "crash_worker.py"), *args],
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        watchdog = threading.Timer(60, proc.kill)
        watchdog.start()
        killed = False
        try:
            assert proc.stdout is not None and proc.stderr is not None
            step, _, k = kill_at.partition(":")
            seen = 0
            for line in proc.stdout:
                if step and line.split()[:1] == [step]:  # "commit-tx\n" too
                    seen += 1
                    if seen == int(k):
                        proc.send_signal(signal.SIGKILL)
                        killed = True
                        break
            proc.wait()
            err = proc.stderr.read().strip().splitlines()
        finally:
            watchdog.cancel()
            proc.stdout.close()  # type: ignore[union-attr]
            proc.stderr.close()  # type: ignore[union-attr]
        assert proc.returncode in (0, 1, -signal.SIGKILL), (proc.returncode, err[-20:])
        last = err[-1] if err else ""
        if proc.returncode == 1:
            assert last.startswith("chunkframe."), f"not a chunkframe error: {err[-20:]}"
        return killed, last

    def kill_point(self) -> str:
        step = self.rng.choice(STEPS)
        k = self.rng.randint(1, 5) if step in ("put-done", "ckpt-done") else 1
        return f"{step}:{k}"

    # -- checks ---------------------------------------------------------------------------
    def compare(self, ds: str, got: pd.DataFrame, model: pd.DataFrame) -> tuple[int, int]:
        """(wrong rows, lost rows) of ``got`` against ``model``."""
        n = min(len(got), len(model))
        assert list(got.columns) == list(model.columns), (ds, list(got.columns))
        assert (got.dtypes == model.dtypes).all(), (ds, got.dtypes, model.dtypes)
        differ = np.zeros(n, dtype=bool)
        for col in model.columns:
            a = got[col].iloc[:n].to_numpy(dtype=object)
            b = model[col].iloc[:n].to_numpy(dtype=object)
            na, nb = pd.isna(a), pd.isna(b)
            differ |= np.array([ma != mb or (not ma and bool(x != y))
                                for x, y, ma, mb in zip(a, b, na, nb, strict=True)], dtype=bool)
        return int(differ.sum()) + max(len(got) - len(model), 0), max(len(model) - len(got), 0)

    def read_while_broken(self, client: cf.Client | None = None,
                          pending: tuple[str, pd.DataFrame] | None = None) -> None:
        """Every dataset reads as its model (or as ``pending``'s frame, a write that may
        have committed) or raises a chunkframe error (never a raw one, never a wrong row)."""
        try:
            client = client or self.client()
        except cf.ChunkFrameError as exc:
            self.seen[type(exc).__name__] += 1
            return
        for ds, model in self.models.items():
            try:
                got = client.open(ds).to_pandas()
            except cf.ChunkFrameError as exc:
                self.seen[type(exc).__name__] += 1
                continue
            if pending is not None and pending[0] == ds and len(got) == len(pending[1]):
                model = pending[1]
            wrong, lost = self.compare(ds, got, model)
            assert wrong == 0 and lost == 0, f"{ds}: {wrong} wrong and {lost} lost rows served"

    def recover(self) -> list[dict]:
        """`chunkframe recover --apply --json`, then a dry run that must find nothing."""
        args = ["--store", str(self.store), "--redis", self.redis.url, "--catalog",
                str(self.catalog), "--home", str(self.root), "--prefix", self.prefix,
                "recover", "--json"]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            main([*args, "--apply"])
        report = json.loads(out.getvalue())
        for p in report:
            self.seen[p["problem"]] += 1
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = main(args)
        assert status == 0, f"a second recover still finds {out.getvalue()}"
        return report

    def settle(self, ds: str, before: pd.DataFrame, after: pd.DataFrame) -> None:
        """After a killed write: the dataset is ``before`` or ``after`` (committed or
        not, nothing in between); the model follows."""
        got = self.client().open(ds).to_pandas()
        model = after if len(got) == len(after) else before
        wrong, lost = self.compare(ds, got, model)
        self.wrong, self.lost = self.wrong + wrong, self.lost + lost
        self.models[ds] = model

    def check_all(self) -> None:
        client = self.client()
        assert sorted(client.datasets()["id"]) == sorted(self.models)
        for ds, model in self.models.items():
            wrong, lost = self.compare(ds, client.open(ds).to_pandas(), model)
            self.wrong, self.lost = self.wrong + wrong, self.lost + lost
        assert (self.wrong, self.lost) == (0, 0), f"{self.wrong} wrong rows, {self.lost} lost"

    # -- faults ---------------------------------------------------------------------------
    def kill_ingest(self) -> None:
        ds = f"d{len(self.models)}"
        self.worker("ingest", ds, kill_at=self.kill_point())
        self.models[ds] = source_frame(ROWS)  # reads of it: the whole source or an error
        self.read_while_broken()
        self.recover()
        if ds not in set(self.client().datasets()["id"]):
            self.worker("ingest", ds)  # resume: from the checkpoint, or anew if abandoned
        self.settle(ds, source_frame(ROWS), source_frame(ROWS))

    def appended(self, ds: str) -> pd.DataFrame:
        more = source_frame(ROWS)
        more["id"] += len(self.models[ds])
        return pd.concat([self.models[ds], more], ignore_index=True)

    def kill_append(self) -> None:
        ds = self.rng.choice(sorted(self.models))
        after = self.appended(ds)
        self.worker("append", ds, str(len(self.models[ds])), kill_at=self.kill_point())
        self.read_while_broken(pending=(ds, after))
        self.recover()
        self.settle(ds, self.models[ds], after)

    def kill_redis(self) -> None:
        """Redis killed under an appender, reads while it is down, then restarted."""
        ds = self.rng.choice(sorted(self.models))
        after = self.appended(ds)
        client = self.client()
        client.open(ds)  # a snapshot cached before the fault
        timer = threading.Timer(self.rng.uniform(0.5, 2.5), self.redis.stop)
        timer.start()
        self.worker("append", ds, str(len(self.models[ds])))
        timer.join()
        self.redis.stop()
        self.read_while_broken(client, (ds, after))  # reads go on, or fail clearly
        self.read_while_broken()  # a new client cannot connect: BackendUnavailableError
        self.redis.start()
        self.read_while_broken(pending=(ds, after))
        self.recover()
        self.settle(ds, self.models[ds], after)

    def corrupt_redis(self) -> None:
        ds = self.rng.choice(sorted(self.models))
        r = self.redis.client()
        gen = int(r.hget(f"{self.prefix}:{{{ds}}}:meta", "generation") or 1)
        key = f"{self.prefix}:{{{ds}}}:g{gen}:chunks"
        n = self.rng.randrange(r.hlen(key))
        if self.rng.random() < 0.5:
            r.hset(key, n, "{garbage")
        else:
            entry = json.loads(r.hget(key, n))
            r.hset(key, n, json.dumps({**entry, "start": entry["start"] + self.rng.choice(
                [-10, -1, 1, 10])}))
        self.read_while_broken()
        self.recover()

    def damage_catalog(self) -> None:
        data = bytearray(self.catalog.read_bytes())
        pages = len(data) // 4096
        for page in self.rng.sample(range(1, pages), min(3, pages - 1)):
            data[page * 4096:(page + 1) * 4096] = self.rng.randbytes(4096)
        self.catalog.write_bytes(bytes(data))

    def catalog_pages(self) -> None:
        client = self.client()
        self.damage_catalog()
        self.read_while_broken(client)
        self.read_while_broken()
        self.recover()

    def catalog_deleted(self) -> None:
        client = self.client()
        self.catalog.unlink()
        self.read_while_broken(client)  # CatalogCorruptionError: the file is missing
        self.recover()

    def catalog_and_redis_lost(self) -> None:
        """Both records lost: the chunk files name themselves, so the data comes back."""
        (self.damage_catalog if self.rng.random() < 0.5 else self.catalog.unlink)()
        self.redis.client().flushall()
        self.read_while_broken()
        self.recover()

    def full_disk(self) -> None:
        if self.disk is not None:
            self.seen["full_disk skipped"] += 1
            return
        ds = self.rng.choice(sorted(self.models))
        filler = self.store / "filler"
        with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as f:
            while True:  # unbuffered: a buffered close would raise ENOSPC again
                f.write(b"\0" * 65536)
        try:
            _, last = self.worker("append", ds, str(len(self.models[ds])))
            self.seen[last.split(":")[0] or "append fit"] += 1
            self.read_while_broken(pending=(ds, self.appended(ds)))  # reading needs no space
        finally:
            filler.unlink()
        self.recover()
        self.settle(ds, self.models[ds], self.appended(ds))


def test_chaos(tmp_path):
    seed = int(os.environ.get("CF_CHAOS_SEED") or random.randrange(2**32))
    print(f"chaos seed {seed}: rerun with CF_CHAOS_SEED={seed}")
    rng = random.Random(seed)
    chaos = Chaos(tmp_path, rng, seed)
    began = time.monotonic()
    done: list[str] = []
    try:
        chaos.worker("ingest", "d0")
        chaos.models["d0"] = source_frame(ROWS)
        faults = FAULTS + [rng.choice(FAULTS) for _ in range(max(ROUNDS - len(FAULTS), 0))]
        rng.shuffle(faults)
        for fault in faults[:ROUNDS]:
            if time.monotonic() - began > BUDGET:
                break
            if fault == "kill_ingest" and len(chaos.models) >= 4:
                fault = "kill_append"
            print(f"round {len(done)}: {fault} (seed {seed})")
            getattr(chaos, fault)()
            chaos.check_all()
            done.append(fault)
    except BaseException:
        print(f"failed in round {len(done)} after {done} (seed {seed})")
        raise
    finally:
        chaos.close()
    print(f"{len(done)} rounds in {time.monotonic() - began:.0f} s: {Counter(done)}; seen "
          f"{dict(chaos.seen)}; {chaos.wrong} wrong rows, {chaos.lost} lost rows")
    assert len(done) >= min(ROUNDS, 8), f"only {len(done)} rounds within the budget"
    if chaos.disk is not None:
        print(chaos.disk)
