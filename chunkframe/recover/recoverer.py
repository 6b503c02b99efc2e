"""Checks of Redis (hot state) and the store (data) against the catalog (the record), and fixes.

Contexts and last values are checked too: contexts against their durable copy in the catalog,
last-value data against the dataset versions the catalog records (rebuilt from the chunks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import pandas as pd

from ..core.errors import ChunkFrameError, InvalidDatasetIdError, SourceError, StateCorruptionError
from ..core.keys import generation_prefix, validate_id
from ..core.model import DatasetMeta, ManifestRef
from ..core.progress import progress_bar
from ..ingestion.lifecycle import ForgetHook, finish_drop, forget_fence
from ..ingestion.options import IngestOptions
from ..ingestion.pipeline import CommitHook, discard_interrupted, ingest
from ..ingestion.provenance import SourceFile, SourceRecord, reopen, why_not_readable
from ..storage.manifest import verify_manifest
from ..storage.state import Holder
from .repair import checkpoint_again, recut, sources_of
from .restore import Restorable, restorable, restore

if TYPE_CHECKING:
    from ..contextcache import ContextCache
    from ..lastcache import LastValues
    from ..read.reader import Reader
    from ..storage.backends import Backends

__all__ = ["PROBLEMS", "Problem", "Recoverer"]

PROBLEMS = ("drop_interrupted", "interrupted", "stale_lock", "redis_state_missing", "redis_state_behind",
            "redis_state_corrupt", "orphan_files", "corrupt_manifest", "missing_chunk", "corrupt_chunk",
            "context_unrecorded", "context_missing", "context_behind", "last_values_missing",
            "catalog_unreadable", "catalog_stale")
"""The kinds of problem the recoverer reports, in the order it repairs them
(``catalog_unreadable`` first of all: the other checks read the restored catalog;
``catalog_stale`` has no repair and refuses every other one). A dataset whose drop was
interrupted (``drop_interrupted``) is checked for nothing else: finishing the drop deletes
whatever else is left of it."""

COLUMNS = ["dataset", "problem", "action", "detail", "applied"]


@dataclass(frozen=True)
class Problem:
    """One thing found wrong: which dataset, what, what the repair does and the evidence.
    ``fix`` (None: nothing safe to do automatically) performs the repair."""

    dataset: str
    problem: str
    action: str
    detail: str
    fix: Callable[[], object] | None = field(default=None, compare=False, repr=False)


class Recoverer:
    """Compares each dataset's Redis state and chunk files with the catalog.

    Given the parts it uses: the :class:`~chunkframe.storage.backends.Backends` (Redis
    state, store, catalog, the write lock), the :class:`~chunkframe.read.reader.Reader`
    (to verify chunks) and the commit ``hooks`` a resumed ingest calls (last values); with
    ``last_values`` (:class:`~chunkframe.lastcache.LastValues`) and ``contexts`` (a
    :class:`~chunkframe.contextcache.ContextCache` with its durable record) it checks and
    rebuilds those too. A dry run (:meth:`find`) changes nothing.
    """

    def __init__(self, backends: Backends, reader: Reader, last_values: LastValues | None = None,
                 contexts: ContextCache | None = None, hooks: Sequence[CommitHook] = ()):
        self.backends, self.reader, self.hooks = backends, reader, tuple(hooks)
        self.last_values, self.contexts = last_values, contexts
        self._seen: dict[tuple[str, int, str], SourceFile] = {}  # source files hashed by find

    def run(self, apply: bool = False, verify: bool = False, progress: bool | None = None
            ) -> pd.DataFrame:
        """The report, one row per problem (dataset, problem, action, detail, applied);
        with ``apply``, each problem that has a safe repair is repaired, in the order of
        :data:`PROBLEMS`. ``progress``: a bar over the datasets checked (None: only in
        notebooks and terminals)."""
        found = self.find(verify, progress)
        rows = []
        if apply and any(p.problem == "catalog_stale" for p in found):
            return pd.DataFrame(self._repair(found, False, refused=(
                "the catalog was read without its WAL because its disk is full, so this "
                "report may miss its latest commits; free space there, then run again")),
                columns=COLUMNS)
        restores = [p for p in found if p.problem == "catalog_unreadable"]
        refused = None
        if apply and restores:  # first; then what is left, against the restored catalog
            done = self._repair(restores, apply)
            pending = {p.dataset for p in restores if p.fix is not None}
            if any(r[0] in pending and not r[4] for r in done):
                refused = ("a catalog restore above was not applied, so the catalog may lack "
                           "newer data than it shows; run recover --apply again once the "
                           "restore can be applied")
            rows += done
            found = [p for p in self.find(verify, progress) if p.problem != "catalog_unreadable"]
        done = self._repair(found, apply and refused is None, refused)
        rows += done
        if apply and refused is None and any(r[4] for r in done):
            # a repair may uncover what it hid (last values of a version an interrupted
            # ingest committed but never published): one more pass, so a next run is clean
            reported = {(r[0], r[1]) for r in rows}
            rows += self._repair([p for p in self.find(verify, progress)
                                  if (p.dataset, p.problem) not in reported], True)
        return pd.DataFrame(rows, columns=COLUMNS)

    @staticmethod
    def _repair(found: list[Problem], apply: bool, refused: str | None = None
                ) -> list[tuple[str, str, str, str, bool]]:
        """Report rows of ``found``, each repaired first if ``apply`` (in PROBLEMS order);
        ``refused``: why the repairs were not applied (said of each that has one)."""
        rows = []
        for p in sorted(found, key=lambda p: (PROBLEMS.index(p.problem), p.dataset)):
            applied, detail = False, p.detail
            if refused is not None and p.fix is not None:
                detail = f"{detail}; not applied: {refused}"
            elif apply and p.fix is not None:
                try:
                    p.fix()
                    applied = True
                except ChunkFrameError as exc:  # e.g. a live writer took the lock meanwhile
                    detail = f"{detail}; not applied: {exc}"
            rows.append((p.dataset, p.problem, p.action, detail, applied))
        return rows

    def find(self, verify: bool = False, progress: bool | None = False) -> list[Problem]:
        """Every problem there is now (nothing is changed); a catalog read without its WAL
        (a full disk) adds ``catalog_stale``: what was read may miss its latest commits."""
        catalog = self.backends.catalog
        before = catalog.stale_reads
        found = self._find(verify, progress)
        if catalog.stale_reads > before:
            found.append(Problem(
                "", "catalog_stale", "none: free space on the catalog's disk, then run again",
                f"the catalog {catalog.location!r} was read without its WAL (its disk is full, "
                "so SQLite could not create the WAL index): the latest commits may be missing "
                "from what was read, so this report may be stale and --apply repairs nothing"))
        return found

    def _find(self, verify: bool, progress: bool | None) -> list[Problem]:
        b = self.backends
        self._seen = {}  # each source file is hashed once per check, however many ingests read it
        files: dict[str, list[str]] = {}
        for key in b.store.list(""):
            files.setdefault(key.split("/", 1)[0] if "/" in key else "", []).append(key)
        damage = b.catalog.damage()
        if damage is not None:
            return [self._damaged(damage, files)]
        recorded = set(b.catalog.ids())
        claimed = b.catalog.claimed()  # a dataset never claimed: the catalog lost it
        dropping = b.catalog.drops()
        out: list[Problem] = []
        ids = sorted(recorded | b.state.dataset_ids() | set(files) - {""} | set(dropping))
        bar = progress_bar(len(ids), "recover", progress, unit="datasets")
        try:
            for ds in ids:
                if ds in dropping:  # whatever is left of it goes: nothing to restore
                    out.append(self._drop_problem(ds, dropping[ds], files.get(ds, [])))
                    bar.update(1)
                    continue
                keys = files.get(ds, [])
                busy = self._ingests(ds, out, keys)
                known = ds in recorded or ds in claimed or not _valid(ds)
                if (ds not in recorded and self._unrecorded(ds, keys, not known, out)) or (
                        ds in recorded and self._behind(ds, keys, out)):
                    bar.update(1)
                    continue  # its files are its data (or Redis's newer data): not orphans
                if ds in recorded:
                    out += self._redis_state(ds, busy)
                    if verify:
                        out += self._corrupt_manifest(ds)
                    out += self._bad_chunks(ds, set(keys) if busy is None else None, verify)
                    if busy is None:
                        out += self._last_values(ds)
                if known:  # the files of a dataset the catalog never claimed are not orphans
                    out += self._orphans(ds, keys, busy)
                bar.update(1)
        finally:
            bar.close()
        if files.get(""):
            out.append(self._orphan_problem("", files[""]))
        return out + self._contexts(set(dropping))

    # -- drops ----------------------------------------------------------------------------
    def forget_hooks(self) -> tuple[ForgetHook, ...]:
        """What a finished drop must also delete: the dataset's context in Redis (and this
        process's copy), and what the reader holds of it."""
        hooks: list[ForgetHook] = [self.reader.forget]
        if self.contexts is not None:
            hooks.insert(0, self.contexts.discard)
        return tuple(hooks)

    def _drop_problem(self, ds: str, requested: float, keys: list[str]) -> Problem:
        b = self.backends
        left = []
        if keys:
            left.append(f"{len(keys)} files")
        try:
            hot = b.state.meta(ds) is not None or bool(b.state.ingest_status(ds))
        except StateCorruptionError:
            hot = True
        if hot:
            left.append("its Redis state")
        left.append("its catalog rows")
        began = pd.Timestamp(requested, unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC")
        return Problem(ds, "drop_interrupted", "finish the drop: delete its Redis keys, chunk "
                       "files, context and catalog rows",
                       f"a drop of dataset {ds!r} begun at {began} did not finish; "
                       f"{', '.join(left)} remain (no writer may use it until it is finished)",
                       partial(finish_drop, b, ds, self.forget_hooks()))

    # -- last values and contexts (their own parts know their Redis layout) ---------------
    def _last_values(self, ds: str) -> list[Problem]:
        record = self.backends.catalog.get(ds)
        if self.last_values is None or record is None:
            return []
        lacking = self.last_values.missing(record)
        if lacking is None:
            return []
        return [Problem(ds, "last_values_missing", "rebuild its last values from the chunk "
                        "files (read through the reader, checksums checked)", lacking,
                        partial(self.last_values.restore, ds))]

    def _contexts(self, dropping: set[str]) -> list[Problem]:
        """Contexts Redis lost or holds otherwise than their durable record, and contexts
        only Redis holds (written before contexts were recorded); those of datasets being
        dropped (``dropping``) are the drop's to delete, not to restore."""
        cache = self.contexts
        if cache is None or cache.record is None:
            return []
        out: list[Problem] = []
        recorded = [cid for cid in cache.recorded_ids() if cid not in dropping]
        for cid in recorded:
            found = cache.check(cid)
            if found is not None:
                out.append(Problem(cid, found[0], "rebuild the context, and its keywords in "
                                   "the find index, in Redis from the catalog's record",
                                   f"context {cid!r}: {found[1]}",
                                   partial(cache.restore, cid)))
        for cid in sorted(set(cache.stored_ids()) - set(recorded) - dropping):
            out.append(Problem(cid, "context_unrecorded", "record its entries in the catalog",
                               f"context {cid!r} is in Redis only (written before contexts "
                               "were recorded durably): a Redis loss would lose it",
                               partial(cache.record_stored, cid)))
        return out

    # -- the catalog ----------------------------------------------------------------------
    def _damaged(self, damage: str, files: dict[str, list[str]]) -> Problem:
        """The catalog file is missing or damaged: one problem, whose repair moves it aside
        and restores every dataset Redis or the chunk files hold (a damaged PostgreSQL
        catalog is reported alike, but its repair is refused: restore it from a backup)."""
        b = self.backends
        found: list[Restorable] = []
        lost: list[str] = []
        for ds in sorted(b.state.dataset_ids() | set(files) - {""}):
            try:
                r, why = restorable(b, ds, files.get(ds, []), files_too=True)
            except InvalidDatasetIdError:
                continue  # a stray directory in the store: the orphan check names it later
            if r is not None:
                found.append(r)
            elif files.get(ds):
                lost.append(f"{ds!r} ({why})")
        said = ", ".join(f"{r.dataset!r} from {r.source}" for r in found) or "nothing"
        detail = (f"the catalog {b.catalog.location!r}: {damage}; restorable: {said}"
                  + (f"; not restorable: {', '.join(lost)}" if lost else ""))

        def fix() -> None:
            b.catalog.move_aside()
            for r in found:
                restore(b, r)

        action = ("move the file aside (kept as <name>.damaged-<time>) and rebuild the catalog "
                  "from Redis's committed state and the chunk files" if b.catalog.db.name == "sqlite"
                  else "none: restore the PostgreSQL database from a backup (a shared database "
                  "is not rebuilt by chunkframe)")
        return Problem("", "catalog_unreadable", action, detail, fix)

    def _unrecorded(self, ds: str, keys: list[str], fresh: bool, out: list[Problem]) -> bool:
        """Report a dataset the (readable) catalog lacks though Redis holds it complete
        with its chunk files (or, ``fresh``: the catalog never claimed it, so it lost it,
        and its files name it): True if reported (as not restorable, without a repair,
        when its files cannot be restored either: they are kept)."""
        r, why = restorable(self.backends, ds, keys, files_too=fresh)
        if r is None and fresh and keys:
            out.append(Problem(
                ds, "catalog_unreadable", "none: its files are kept (restore the catalog from "
                "a backup, or delete them yourself if they are not wanted)",
                f"{len(keys)} files ({keys[0]!r}...) name it, but the catalog never recorded "
                f"it and they cannot be restored: {why}"))
            return True
        if r is None:
            return False
        cur = r.current
        warn = ("; the files do not record its source's fingerprint, time and device columns "
                "or deletes" if r.source != "Redis" else "")
        out.append(Problem(ds, "catalog_unreadable", f"record it in the catalog from {r.source}",
                           f"the catalog lacks it, but {r.source} hold{'s' * (r.source == 'Redis')}"
                           f" generation {cur.generation} version {cur.version} ({cur.rows} "
                           f"rows, {cur.chunks} chunks){warn}",
                           lambda: restore(self.backends, r)))
        return True

    def _behind(self, ds: str, keys: list[str], out: list[Problem]) -> bool:
        """Report a dataset whose committed state in Redis is newer than the catalog's
        record (a catalog restored from an older backup): True if reported. With intact
        chunk files its repair records Redis's newer versions in the catalog; else nothing
        is repaired (rebuilding Redis from the older record would give its files away)."""
        b = self.backends
        record = b.catalog.get(ds)
        try:
            meta = b.state.meta(ds)
        except StateCorruptionError:
            return False
        if record is None or meta is None or (
                (meta.generation, meta.version) <= (record.generation, record.version)):
            return False
        r, why = restorable(b, ds, keys, files_too=False, since=record)
        if r is None:  # neither side is known good: keep both, touch nothing
            out.append(Problem(ds, "redis_state_corrupt", "none automatically: its files are "
                               "kept (restore the catalog from a newer backup, or re-ingest "
                               "the dataset with mode='overwrite')",
                               f"Redis holds committed generation {meta.generation} version "
                               f"{meta.version}, newer than the catalog's generation "
                               f"{record.generation} version {record.version}, but it cannot "
                               f"be restored into the catalog: {why}"))
            return True
        cur = r.current
        out.append(Problem(ds, "catalog_unreadable", "record Redis's newer versions in the "
                           "catalog", f"the catalog records generation {record.generation} "
                           f"version {record.version} ({record.rows} rows), but Redis holds "
                           f"committed generation {cur.generation} version {cur.version} "
                           f"({cur.rows} rows, {cur.chunks} chunks) with intact chunk files (a "
                           "catalog restored from an older backup?)",
                           lambda: restore(b, r)))
        return True

    # -- locks and ingests ----------------------------------------------------------------
    def _ingests(self, ds: str, out: list[Problem], keys: list[str]) -> int | None:
        """Report an interrupted ingest or a stale lock of ``ds``; returns the generation of
        an ingest under way or interrupted (its files are not orphans), else None. An ingest
        whose status Redis lost is known from the catalog's record of it (``keys``: the
        dataset's files, which show whether it wrote any)."""
        b = self.backends
        status = b.state.ingest_status(ds)
        seen = b.state.lock_value(ds)
        holder = Holder.parse(seen)
        dead = holder is not None and holder.is_dead()
        lost = not status and seen is None and self._lost_ingest(ds, keys)
        if lost:
            status = lost
        if status:
            gone = "its lock expired" if seen is None else (
                f"its holder, process {holder.pid} on {holder.host}, is dead" if dead and holder
                else "")
            try:
                gen = int(status["generation"])
            except (KeyError, ValueError):
                if not gone:
                    return None  # a live writer's: not ours to judge
                out.append(Problem(ds, "redis_state_corrupt", "delete the unreadable ingest "
                                   "status", f"its ingest status names no generation "
                                   f"({status.get('generation')!r}) and {gone}",
                                   lambda: self._abandon(ds, status_only=True)))
                return None
            if gone:
                done = status.get("done", "0")
                stopped = (f"{status.get('op', 'ingest')} of generation {gen} stopped with "
                           f"{done} chunks checkpointed: {gone}")
                if lost:
                    stopped = (f"{status.get('op', 'ingest')} of generation {gen} stopped and "
                               "Redis lost its status, checkpoints and lock (the catalog "
                               "recorded the ingest when it began; its files are in the store)")
                why = self._why_not_resumable(status, self._seen)
                if why is None:
                    resume = partial(self._resume, ds, status)
                    out.append(Problem(
                        ds, "interrupted", "resume it from its recorded source "
                        f"{SourceRecord.from_json(status['source']).describe()}",
                        f"{stopped}; its source is unchanged since the ingest began",
                        partial(self._reinstate, ds, status, resume) if lost else resume))
                else:
                    abandon = partial(self._abandon, ds)
                    out.append(Problem(
                        ds, "interrupted", "abandon: delete its checkpointed chunk files and "
                        "its status (the committed dataset, if any, is kept)",
                        f"{stopped}; it cannot be resumed from its source: {why} (to resume "
                        "it yourself, run the same ingest with mode='resume')",
                        partial(self._reinstate, ds, status, abandon) if lost else abandon))
            return gen
        if seen is not None and dead:
            assert holder is not None
            out.append(Problem(ds, "stale_lock", "release the lock",
                               f"held by process {holder.pid} on {holder.host}, which is dead",
                               lambda: self._break_lock(ds, seen)))
        return None

    def _break_lock(self, ds: str, seen: bytes) -> None:
        """Release a dead holder's lock; and the fencing counter too when nothing else is
        left of the dataset (a dropper killed after its last commit)."""
        b = self.backends
        b.state.break_lock(ds, seen)
        if (b.catalog.get(ds) is None and ds not in b.catalog.drops()
                and b.state.meta(ds) is None and not b.state.ingest_status(ds)):
            forget_fence(b, ds)

    def _lost_ingest(self, ds: str, keys: list[str]) -> dict[str, str] | None:
        """The catalog's record of the latest ingest of ``ds`` if it never committed and left
        files of its own in the store, else None (it committed, was superseded, or was
        abandoned and its files deleted). For a caller that found no status in Redis."""
        b = self.backends
        status = b.catalog.ingest_record(ds)
        if status is None:
            return None
        try:
            gen, base = int(status["generation"]), int(status.get("base_chunk") or 0)
        except (KeyError, ValueError):
            return None
        record = b.catalog.get(ds)
        if record is not None and (record.generation > gen or record.generation == gen and (
                status.get("op") != "append" or record.chunks > base)):
            return None  # committed, or a later generation is current
        prefix = generation_prefix(ds, gen) + "/"
        committed = (b.catalog.referenced(ds, prefix) | b.catalog.manifest_keys(ds)
                     if record is not None else set())
        return status if any(k.startswith(prefix) and k not in committed for k in keys) else None

    def _reinstate(self, ds: str, status: dict[str, str], then: Callable[[], None]) -> None:
        """Give Redis back the status of an ingest the catalog recorded, then ``then()``
        (resume it, or abandon it: both go by Redis's status)."""
        lock = self.backends.lock(ds)
        try:
            if not self.backends.state.ingest_status(ds):
                self.backends.state.begin_ingest(lock, status)
        finally:
            lock.release()
        then()

    def _why_not_resumable(self, status: dict[str, str],
                           seen: dict[tuple[str, int, str], SourceFile] | None = None
                           ) -> str | None:
        """None when the interrupted ingest's recorded source is still there, unchanged;
        else why it cannot be resumed from it (``seen``: see :func:`why_not_readable`)."""
        if status.get("op") == "compact":
            return "a compaction is not resumed (the version before it stays current)"
        if status.get("op") == "update":
            return "an update is not resumed (the version before it stays current)"
        if not status.get("source"):
            return ("no source was recorded (an ingest begun before sources were recorded, "
                    "or a Dask ingest)")
        try:
            record = SourceRecord.from_json(status["source"])
        except SourceError as exc:
            return str(exc)
        return why_not_readable(record, self.backends.storage_options, seen=seen)

    def _resume(self, ds: str, status: dict[str, str]) -> None:
        """Run the interrupted ingest again from its recorded source with mode='resume':
        it skips the checkpointed chunks and ends as an uninterrupted ingest would."""
        why = self._why_not_resumable(status)  # again: it may have changed since the check
        if why is not None:
            raise SourceError(f"cannot resume the ingest of dataset {ds!r}: {why}")
        record = SourceRecord.from_json(status["source"])
        opts = record.options
        options = IngestOptions(
            mode="resume", chunk_rows=int(status["chunk_rows"]),
            time_column=status.get("time_column") or None,
            device_column=status.get("device_column") or None,
            compression=status.get("compression") or None,  # type: ignore[arg-type]
            progress=False, evolve=bool(opts.get("evolve")), fingerprint=opts.get("fingerprint"))
        ingest(self.backends, reopen(record, self.backends.storage_options), ds, options,
               hooks=self.hooks)

    def _abandon(self, ds: str, status_only: bool = False) -> None:
        lock = self.backends.lock(ds)  # takes over a dead holder's lock at once
        try:
            if status_only:
                self.backends.state.begin_ingest(lock, {})  # replaced by nothing: deleted
            else:
                discard_interrupted(self.backends, lock, ds)
        finally:
            lock.release()

    # -- Redis against the catalog --------------------------------------------------------
    def _redis_state(self, ds: str, busy: int | None) -> list[Problem]:
        b = self.backends
        record = b.catalog.get(ds)
        if record is None:
            return []
        ref = b.catalog.manifest(ds, record.generation)
        ref = ref if ref is not None and ref.chunks <= record.chunks else None
        floor = b.catalog.fence(ds)
        problem, detail = self._compare(ds, record, ref, floor, busy)
        if problem is None:
            return []
        return [Problem(ds, problem, "rebuild Redis's metadata, chunk table and fencing "
                        "counter from the catalog", detail,
                        lambda: self._rebuild(ds, floor))]

    def _compare(self, ds: str, record: DatasetMeta, ref: ManifestRef | None, floor: int,
                 busy: int | None) -> tuple[str | None, str]:
        """What is wrong with Redis's state of ``ds`` against the catalog's ``record`` and
        checkpoint ``ref``: the metadata, the pointer, and the entries after the checkpoint
        (the only ones Redis holds), in time that does not grow with the dataset's history."""
        state = self.backends.state
        try:
            head = state.head(ds, record.generation)
            meta = None if head is None else head.meta
            found = state.chunk_metas(ds, record.generation)
        except StateCorruptionError as exc:
            return "redis_state_corrupt", exc.disagreement
        fence = state.fence(ds)
        if meta is None:
            return "redis_state_missing", (f"Redis has no metadata of it; the catalog records "
                                           f"version {record.version} ({record.rows} rows)")
        if (meta.generation, meta.version) < (record.generation, record.version):
            return "redis_state_behind", (
                f"Redis has generation {meta.generation} version {meta.version}, the catalog "
                f"generation {record.generation} version {record.version}")
        if meta != record:
            wrong = [k for k in record.__dataclass_fields__
                     if getattr(meta, k) != getattr(record, k)]
            return "redis_state_corrupt", f"Redis's metadata differs from the catalog's in {wrong}"
        assert head is not None
        if head.manifest != ref:
            return "redis_state_corrupt", (
                f"Redis points at checkpoint {head.manifest}, the catalog at {ref}")
        chunks = self.backends.catalog.chunks(ds, record.generation,
                                              0 if ref is None else ref.chunks, record.chunks)
        missing = [c.chunk for c in chunks if c.chunk not in found]
        if missing:
            return "redis_state_behind", f"Redis lacks chunks {_few(missing)} of the catalog's"
        differ = [c.chunk for c in chunks if found[c.chunk] != c]
        extra = [] if busy == record.generation else sorted(
            n for n in set(found) - {c.chunk for c in chunks} if n >= record.chunks)
        if differ or extra:
            return "redis_state_corrupt", "; ".join(
                ([f"chunks {_few(differ)} differ from the catalog's"] if differ else [])
                + ([f"chunks {_few(extra)} are not in the catalog"] if extra else []))
        if fence is None or fence < floor:
            return "redis_state_behind", (
                f"the fencing counter is {'missing' if fence is None else fence}, below the "
                f"catalog's {floor}: the next writes would be refused as if a newer writer "
                "existed")
        return None, ""

    def _rebuild(self, ds: str, floor: int) -> None:
        b = self.backends
        b.state.raise_fence(ds, floor)  # first: the lock's next token must exceed the floor
        lock = b.lock(ds)
        try:
            record = b.catalog.get(ds)
            if record is not None:  # re-read under the lock: the record as it is now
                ref = b.catalog.manifest(ds, record.generation)
                ref = ref if ref is not None and ref.chunks <= record.chunks else None
                b.state.rebuild(lock, record, ref, b.catalog.chunks(
                    ds, record.generation, 0 if ref is None else ref.chunks, record.chunks))
        finally:
            lock.release()

    # -- the store ------------------------------------------------------------------------
    def _orphans(self, ds: str, keys: list[str], busy: int | None) -> list[Problem]:
        """Files of ``ds`` that no chunk the catalog records refers to (any generation it
        keeps, for versions; a shared file is referenced by every chunk row that names it)
        nor a checkpoint of an ingest under way, outside that ingest's generation (a dataset whose
        committed state in Redis is newer than the record is not checked: :meth:`_behind`)."""
        if not keys:
            return []
        b = self.backends
        referenced = {c.key for g in b.catalog.generations(ds) for c in b.catalog.chunks(ds, g)}
        referenced |= b.catalog.manifest_keys(ds)
        if busy is not None:  # an ingest under way or interrupted: the kept versions' files
            try:                # it shares
                referenced |= {m.key for m in b.state.chunk_metas(ds, busy).values()}
            except StateCorruptionError:
                return []  # which files it names is unknown: none is called an orphan
        skip = None if busy is None else generation_prefix(ds, busy) + "/"
        lost = [k for k in keys if k not in referenced and not (skip and k.startswith(skip))]
        return [self._orphan_problem(ds, lost)] if lost else []

    def _orphan_problem(self, ds: str, keys: list[str]) -> Problem:
        store = self.backends.store
        size = sum(n for n in map(store.size, keys) if n is not None)  # no content read

        def delete() -> None:
            for key in keys:
                store.delete(key)

        where = f"{keys[0]!r}" + (f" and {len(keys) - 1} more" if len(keys) > 1 else "")
        return Problem(ds, "orphan_files", "delete them",
                       f"{len(keys)} files ({size} bytes) no recorded chunk refers to: {where}",
                       delete)

    # -- manifests and chunks -------------------------------------------------------------
    def _corrupt_manifest(self, ds: str) -> list[Problem]:
        """The current generation's checkpoint, every block of it checked (``--verify``)."""
        b = self.backends
        record = b.catalog.get(ds)
        ref = None if record is None else b.catalog.manifest(ds, record.generation)
        if record is None or ref is None:
            return []
        why = verify_manifest(b.store, ds, record.generation, ref)
        if why is None:
            return []
        return [Problem(ds, "corrupt_manifest", "write the checkpoint again from the catalog's "
                        "chunk rows (reads use those rows meanwhile)", why,
                        partial(self._checkpoint_again, ds, ref.key))]

    def _checkpoint_again(self, ds: str, stale: str) -> None:
        lock = self.backends.lock(ds)
        try:
            checkpoint_again(self.backends, lock, ds)
        finally:
            lock.release()
        self.backends.store.delete(stale)

    # -- chunks ---------------------------------------------------------------------------
    def _bad_chunks(self, ds: str, present: set[str] | None, verify: bool) -> list[Problem]:
        """Chunks of the current version whose files are gone (``missing_chunk``: not among
        the store's files ``present``; None: not checked while an ingest runs) or, with
        ``verify``, fail their checks when read (``corrupt_chunk``), each re-cut from the
        dataset's recorded source when that is provably unchanged."""
        record = self.backends.catalog.get(ds) if present is not None or verify else None
        if record is None:
            return []
        try:
            snap = self.reader.version_snapshot(ds, record.version)  # the catalog's: no Redis
        except ChunkFrameError as exc:
            return [Problem(ds, "corrupt_chunk", "none automatically: re-ingest the dataset "
                            "with mode='overwrite'",
                            f"its chunk table in the catalog is incomplete: {exc}")] if verify else []
        bad: dict[str, dict[int, str]] = {"missing_chunk": {}, "corrupt_chunk": {}}
        for i, cm in enumerate(snap.chunks):
            if present is not None and cm.key not in present:
                bad["missing_chunk"][cm.chunk] = f"chunk {cm.chunk} ({cm.key}) is gone"
            elif verify:
                problem = self.reader.verify_chunk(snap, i)
                if problem is not None:
                    bad["corrupt_chunk"][cm.chunk] = f"chunk {cm.chunk} ({cm.key}): {problem}"
        out = []
        for kind, chunks in bad.items():
            for numbers, source, why in (sources_of(self.backends, ds, record.generation, chunks,
                                                    self._seen) if chunks else []):
                what = "; ".join(chunks[n] for n in numbers[:3]) + (
                    f"; and {len(numbers) - 3} more" if len(numbers) > 3 else "")
                if source is None or why is not None:
                    out.append(Problem(ds, kind, "none automatically: restore the chunk files, "
                                       "or re-ingest the dataset with mode='overwrite'",
                                       f"{what}; cannot re-cut from the source: {why}"))
                else:
                    out.append(Problem(ds, kind, f"re-cut from the source ({source.describe()}), "
                                       "which is unchanged", what,
                                       partial(recut, self.backends, self.reader, ds, numbers)))
        return out

def _valid(ds: str) -> bool:
    """Whether ``ds`` is a valid dataset id (a stray directory in the store is not)."""
    try:
        validate_id(ds)
    except InvalidDatasetIdError:
        return False
    return True


def _few(numbers: list[int], limit: int = 8) -> str:
    """Up to ``limit`` numbers, and how many more."""
    shown = ", ".join(map(str, numbers[:limit]))
    return shown + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")

