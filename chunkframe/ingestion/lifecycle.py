"""Dataset lifecycle: whether a dataset exists, dropping one (crash-safe), named snapshots."""

from __future__ import annotations

import difflib
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pandas as pd
import redis

from ..core.errors import (
    Call,
    DatasetNotFoundError,
    Hint,
    InvalidArgumentError,
    LockLostError,
    SnapshotNotFoundError,
)
from ..core.keys import validate_id
from ..storage.state import scan_keys

if TYPE_CHECKING:
    from ..storage.backends import Backends
    from ..storage.catalog import Catalog
    from ..storage.state import DatasetLock

__all__ = ["DropResult", "ForgetHook", "SnapshotInfo", "SNAPSHOT_COLUMNS", "exists",
           "drop_dataset", "finish_drop", "take_snapshot", "snapshot_info", "snapshot_table",
           "delete_snapshot", "forget_fence"]

ForgetHook = Callable[[str], object]
"""Called with a dropped dataset's id, to drop what another part keeps of it (its context in
Redis, a reader's caches), after its files and before the catalog forgets it."""

SNAPSHOT_COLUMNS = ["name", "created", "datasets", "versions", "metadata"]
"""The columns of ``cf.snapshots()``."""

# KEYS[1] the dataset's lock, KEYS[2..] keys of the dataset to delete; ARGV[1] lock token
# returns how many keys were deleted, or 'LOCKLOST' if the caller no longer holds the lock
LUA_DELETE_KEYS = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then
    return redis.error_reply('LOCKLOST')
end
local n = 0
for i = 2, #KEYS do n = n + redis.call('del', KEYS[i]) end
return n
"""

# KEYS[1] the dataset's lock, KEYS[2] its fencing counter; returns 1 if the counter was
# deleted (nobody holds the lock: no writer's token needs it), else 0
LUA_FORGET_FENCE = """
if redis.call('exists', KEYS[1]) == 0 then
    return redis.call('del', KEYS[2])
end
return 0
"""

_BATCH = 500  # keys deleted per script call


@dataclass(frozen=True)
class DropResult:
    """What :func:`drop_dataset` removed.

    ``versions``: the versions the catalog forgot; ``files`` and ``bytes``: the chunk and
    checkpoint files deleted from the store (bytes as the catalog recorded them);
    ``redis_keys``: the dataset's keys deleted from Redis (metadata, chunk tables, ingest
    status, last values...); ``context_entries``: the entries of its context (tags)
    deleted; ``snapshots``: the snapshots that forgot it (``force=True``); ``resumed``: the
    drop finished one that an interruption had left half done.
    """

    dataset: str
    versions: int = 0
    files: int = 0
    bytes: int = 0
    redis_keys: int = 0
    context_entries: int = 0
    snapshots: tuple[str, ...] = ()
    resumed: bool = False


@dataclass(frozen=True)
class SnapshotInfo:
    """A named snapshot: the version of each dataset it names, when it was recorded, and
    the metadata it was given."""

    name: str
    created: pd.Timestamp
    versions: Mapping[str, int] = field(default_factory=dict)
    metadata: Any = None


def _not_found(catalog: Catalog, dataset_id: str, doing: str) -> DatasetNotFoundError:
    ids = catalog.ids()
    close = difflib.get_close_matches(dataset_id, ids, n=3, cutoff=0.5)
    hint = f"; did you mean {close!r}" if close else (
        f"; the datasets are {ids[:10]!r}" if ids else "; no datasets exist")
    return DatasetNotFoundError(f"cannot {doing} dataset {dataset_id!r}: it does not exist{hint}",
                                hint=Hint("list them with {}", Call.of("datasets")))


def exists(catalog: Catalog, dataset_id: str) -> bool:
    """Whether ``dataset_id`` is a complete dataset in the catalog (the record: Redis is not
    asked). An invalid id raises :class:`InvalidDatasetIdError`; a dataset being dropped
    does not exist."""
    validate_id(dataset_id)
    return catalog.get(dataset_id) is not None


# -- drop -------------------------------------------------------------------------------------

def drop_dataset(backends: Backends, dataset_id: str, *, force: bool = False,
                 wait: bool | float = False, forget: Iterable[ForgetHook] = ()) -> DropResult:
    """Remove a dataset from the catalog, Redis and the chunk store, crash-safely.

    Under the dataset's write lock: first the intent is recorded in the catalog (the dataset
    stops being complete there, and no writer but a dropper may claim it); then its Redis
    keys, its chunk files, its context (``forget`` hooks) and last its catalog rows and the
    intent are deleted. A kill at any step leaves an intent that ``recover --apply`` (or
    this function, called again) finishes. Only keys and files of this dataset are touched:
    a file that another dataset's chunk table names is kept.

    ``force``: drop it even though named snapshots reference it (they forget it);
    otherwise :class:`DatasetReferencedError`, with nothing changed.
    """
    validate_id(dataset_id)
    if not isinstance(force, bool):
        raise InvalidArgumentError(f"force must be True or False, got {force!r} (drop of "
                                   f"dataset {dataset_id!r})")
    catalog = backends.catalog
    if catalog.get(dataset_id) is None and dataset_id not in catalog.drops():
        raise _not_found(catalog, dataset_id, "drop")  # before the lock: nothing is claimed
    lock = backends.lock(dataset_id, wait, dropping=True)
    try:
        meta, names = catalog.begin_drop(dataset_id, lock.fence, force)
        result = _finish(backends, lock, dataset_id, tuple(forget))
    finally:
        lock.release()
    forget_fence(backends, dataset_id)
    return replace(result, snapshots=tuple(names), resumed=meta is None)


def finish_drop(backends: Backends, dataset_id: str, forget: Iterable[ForgetHook] = ()
                ) -> DropResult:
    """Finish a drop that was begun and interrupted (the recoverer's repair); a dataset
    without an unfinished drop is left alone (an empty result)."""
    lock = backends.lock(dataset_id, dropping=True)  # a dead dropper's lock is taken over
    try:
        if dataset_id not in backends.catalog.drops():
            return DropResult(dataset_id)
        result = _finish(backends, lock, dataset_id, tuple(forget))
    finally:
        lock.release()
    forget_fence(backends, dataset_id)
    return replace(result, resumed=True)


def _finish(backends: Backends, lock: DatasetLock, dataset_id: str,
            forget: Sequence[ForgetHook]) -> DropResult:
    """The deletions of a drop whose intent is recorded, each one idempotent: run again
    after a kill, it deletes what is left."""
    keys = _delete_redis_keys(backends, lock, dataset_id)
    files, nbytes = _delete_files(backends, lock, dataset_id)
    backends.catalog.forget_context(dataset_id)  # first the record, so no read revives it
    entries = 0
    for hook in forget:
        found = hook(dataset_id)
        entries += found if isinstance(found, int) else 0
    lock.check()
    versions = backends.catalog.end_drop(dataset_id, lock.fence)
    return DropResult(dataset_id, versions, files, nbytes, keys, entries)


def _pattern(base: str) -> str:
    """A SCAN pattern matching the keys under ``base:`` exactly (glob characters escaped)."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", base) + ":*"


def _delete_redis_keys(backends: Backends, lock: DatasetLock, dataset_id: str) -> int:
    """Delete every key of the dataset in Redis but its lock and fencing counter (they share
    the dataset's hash tag, so a script may delete them together), fenced by the lock."""
    state = backends.state
    keys = state.keys(dataset_id)
    found = {k if isinstance(k, bytes) else str(k).encode()
             for k in scan_keys(state.client, _pattern(keys.base))}
    doomed = sorted(found - {keys.lock.encode(), keys.fence.encode()})
    script = state.client.register_script(LUA_DELETE_KEYS)
    deleted = 0
    for i in range(0, len(doomed), _BATCH):
        lock.check()
        try:
            deleted += int(script(keys=[keys.lock, *doomed[i:i + _BATCH]], args=[lock.token]))
        except redis.ResponseError as exc:
            if "LOCKLOST" not in str(exc):
                raise
            raise LockLostError(
                f"lost the lock of dataset {dataset_id!r} while dropping it; the drop stays "
                "recorded as unfinished",
                hint=Hint("finish it with {}", Call.of("drop", dataset_id))) from exc
    return deleted


def _delete_files(backends: Backends, lock: DatasetLock, dataset_id: str) -> tuple[int, int]:
    """Delete the dataset's files (its chunks, checkpoints, and what killed writers left);
    a file that another dataset's chunk table names is kept. Returns (files, bytes)."""
    store, catalog = backends.store, backends.catalog
    found = list(store.list(dataset_id))
    kept = catalog.keys_elsewhere(dataset_id, f"{dataset_id}/")
    sizes = catalog.recorded_sizes(dataset_id)
    doomed = [k for k in found if k not in kept]
    lock.check()
    if kept:  # never so as chunkframe writes keys; then only what is not shared goes
        for key in doomed:
            store.delete(key)
        store.sweep_partials(dataset_id)
    else:  # a generation's directory at a time, temporaries included
        groups = sorted({"/".join(k.split("/")[:2]) for k in doomed if k.count("/") >= 2})
        for prefix in groups:
            store.delete_prefix(prefix)
        for key in doomed:
            if key.count("/") < 2:
                store.delete(key)
        store.sweep_partials(dataset_id)
    return len(doomed), sum(sizes.get(k, 0) for k in doomed)


def forget_fence(backends: Backends, dataset_id: str) -> None:
    """Delete the dataset's fencing counter in Redis unless a writer took the lock since
    (the catalog keeps the latest token, and the next lock raises the counter above it)."""
    keys = backends.state.keys(dataset_id)
    try:
        backends.state.client.eval(LUA_FORGET_FENCE, 2, keys.lock, keys.fence)
    except redis.RedisError:
        pass  # harmless: the counter only ever guards tokens, and the catalog has the floor


# -- snapshots --------------------------------------------------------------------------------

def _name(name: object) -> str:
    return validate_id(name, "snapshot name")


def _datasets(datasets: object) -> list[str] | None:
    if datasets is None:
        return None
    if isinstance(datasets, str):
        datasets = [datasets]
    if not isinstance(datasets, Iterable) or isinstance(datasets, Mapping):
        raise InvalidArgumentError(
            f"datasets must be a list of dataset ids (or None: every dataset), got "
            f"{type(datasets).__name__} {datasets!r}")
    ids = [validate_id(d) for d in datasets]
    if not ids:
        raise InvalidArgumentError("datasets is empty: name at least one dataset, or pass "
                                   "None to record every dataset")
    return list(dict.fromkeys(ids))


def take_snapshot(catalog: Catalog, name: str, datasets: Sequence[str] | str | None = None,
                  metadata: Any = None) -> SnapshotInfo:
    """Record snapshot ``name``: the current version of each of ``datasets`` (None: every
    complete dataset) in the catalog, with ``metadata`` (JSON data), in one transaction.
    Those versions stay readable (``cf.open(id, as_of=name)``) and are never pruned while
    the snapshot exists."""
    name = _name(name)
    ids = _datasets(datasets)
    try:
        text = json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"the metadata of snapshot {name!r} must be JSON data (dicts, lists, strings, "
            f"numbers, booleans, None): {exc}") from exc
    if ids is None and not catalog.ids():
        raise InvalidArgumentError(
            f"cannot record snapshot {name!r}: there are no datasets to record",
            hint=Hint("ingest one first with {}", Call.of("ingest")))
    created = time.time_ns() // 1000 * 1000
    versions = catalog.add_snapshot(name, ids, text, created)
    return SnapshotInfo(name, pd.Timestamp(created, unit="ns", tz="UTC"), versions,
                        json.loads(text))


def snapshot_info(catalog: Catalog, name: str) -> SnapshotInfo:
    """Snapshot ``name``; :class:`SnapshotNotFoundError` naming close names if none."""
    name = _name(name)
    found = catalog.snapshot_of(name)
    if found is None:
        raise SnapshotNotFoundError(name, catalog.snapshot_names())
    created, text, versions = found
    return SnapshotInfo(name, pd.Timestamp(created, unit="ns", tz="UTC"), versions,
                        json.loads(text))


def snapshot_table(catalog: Catalog) -> pd.DataFrame:
    """Every snapshot, oldest first: ``name, created, datasets`` (how many), ``versions``
    (dataset id -> version) and ``metadata``."""
    rows = [(n, pd.Timestamp(c, unit="ns", tz="UTC"), len(v), v, json.loads(m))
            for n, c, m, v in catalog.snapshot_table()]
    df = pd.DataFrame(rows, columns=SNAPSHOT_COLUMNS)
    df["created"] = pd.to_datetime(df["created"], utc=True)
    df["datasets"] = df["datasets"].astype("int64")
    return df


def delete_snapshot(catalog: Catalog, name: str) -> SnapshotInfo:
    """Forget snapshot ``name`` and return what it was; the versions it named become
    prunable (nothing is deleted now)."""
    info = snapshot_info(catalog, name)
    catalog.delete_snapshot(info.name)
    return info
