"""Exceptions raised by chunkframe; each message says what happened, to what, and what to do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "Hint",
    "Arg",
    "Call",
    "Placeholder",
    "HintStyle",
    "PYTHON",
    "ChunkFrameError",
    "DatasetNotFoundError",
    "DatasetExistsError",
    "DatasetLockedError",
    "LockLostError",
    "ChunkCorruptionError",
    "SchemaMismatchError",
    "NoTimeColumnError",
    "InvalidDatasetIdError",
    "SourceError",
    "BackendUnavailableError",
    "ContextError",
    "InvalidArgumentError",
    "PathNotFoundError",
    "VersionNotFoundError",
    "ReadOnlyVersionError",
    "StateCorruptionError",
    "StateRepairedError",
    "CatalogCorruptionError",
    "DropPendingError",
    "DatasetReferencedError",
    "SnapshotNotFoundError",
    "SnapshotExistsError",
]


# -- hints: the "what to do next" of a message, said in Python or on the command line ---------

@dataclass(frozen=True)
class Placeholder:
    """A value the user fills in, such as the ``source`` of an ingest."""

    name: str


@dataclass(frozen=True)
class Arg:
    """A keyword argument (``mode='overwrite'``) or, on the command line, its flag
    (``--mode overwrite``). ``value=...`` stands for any value (``time_column='...'``)."""

    name: str
    value: Any = ...


@dataclass(frozen=True)
class Call:
    """A call of the public API (``cf.ingest(source, 'x', mode='overwrite')``) or, on the
    command line, its command (``chunkframe ingest SRC x --mode overwrite``)."""

    func: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[Arg, ...] = ()

    @classmethod
    def of(cls, func: str, *args: Any, **kwargs: Any) -> Call:
        return cls(func, args, tuple(Arg(k, v) for k, v in kwargs.items()))


class HintStyle(Protocol):
    """How a front end names arguments and calls (:data:`PYTHON`; the CLI has its own)."""

    def arg(self, arg: Arg) -> str: ...

    def call(self, call: Call) -> str: ...


class _PythonStyle:
    """Hints in the words of the Python API."""

    def value(self, v: Any) -> str:
        if isinstance(v, Placeholder):
            return v.name
        return "'...'" if v is ... else repr(v)

    def arg(self, arg: Arg) -> str:
        return f"{arg.name}={self.value(arg.value)}"

    def call(self, call: Call) -> str:
        parts = [self.value(a) for a in call.args] + [self.arg(a) for a in call.kwargs]
        return f"cf.{call.func}({', '.join(parts)})"


PYTHON: HintStyle = _PythonStyle()


@dataclass(frozen=True)
class Hint:
    """What to do next, as a ``str.format`` template whose ``{}`` are :class:`Arg` or
    :class:`Call` terms, so that each front end can say it in its own words.

    >>> hint = Hint("use {} to replace it", Arg("mode", "overwrite"))
    >>> hint.render(PYTHON)
    "use mode='overwrite' to replace it"
    """

    template: str
    terms: tuple[Arg | Call, ...] = ()

    def __init__(self, template: str, *terms: Arg | Call) -> None:
        object.__setattr__(self, "template", template)
        object.__setattr__(self, "terms", terms)

    def render(self, style: HintStyle = PYTHON) -> str:
        return self.template.format(*(
            style.call(t) if isinstance(t, Call) else style.arg(t) for t in self.terms))

    def __str__(self) -> str:
        return self.render(PYTHON)


# -- errors -----------------------------------------------------------------------------------


class ChunkFrameError(Exception):
    """Base class of every error chunkframe raises on purpose.

    ``hint`` (a :class:`Hint`) says what to do next; ``str(error)`` says it in Python
    (``message; hint``), ``error.message(style)`` in the words of another front end.
    """

    hint: Hint | None = None

    def __init__(self, *args: Any, hint: Hint | None = None) -> None:
        if hint is not None:
            self.hint, self.what = hint, str(args[0]) if args else ""
            args = (f"{self.what}; {hint}" if self.what else str(hint), *args[1:])
        super().__init__(*args)

    def message(self, style: HintStyle = PYTHON) -> str:
        """The message with its hint said in ``style`` (the command line passes its own)."""
        if self.hint is None or style is PYTHON:
            return str(self)
        hint = self.hint.render(style)
        return f"{self.what}; {hint}" if self.what else hint


class DatasetNotFoundError(ChunkFrameError, KeyError):
    """No complete dataset has this id."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DatasetExistsError(ChunkFrameError, FileExistsError):
    """`mode="create"` on a dataset id that is already taken."""


class DatasetLockedError(ChunkFrameError):
    """Another worker holds the dataset's ingest lock."""


class LockLostError(ChunkFrameError):
    """This worker's lock expired or was taken over; it stopped writing."""


class ChunkCorruptionError(ChunkFrameError):
    """A chunk's bytes are missing, truncated or fail their checksum."""

    def __init__(
        self,
        dataset: str,
        chunk: int,
        key: str,
        stored: str | None = None,
        computed: str | None = None,
        reason: str = "checksum mismatch",
    ) -> None:
        self.dataset, self.chunk, self.key = dataset, chunk, key
        self.stored, self.computed, self.reason = stored, computed, reason
        detail = f" (stored {stored}, computed {computed})" if stored or computed else ""
        super().__init__(
            f"chunk {chunk} of dataset {dataset!r} at key {key!r} is corrupt: {reason}{detail}. "
            f"No value from it was returned",
            hint=Hint("re-ingest the dataset ({}) or restore the chunk file",
                      Call.of("ingest", Placeholder("source"), dataset, mode="overwrite")),
        )


class SchemaMismatchError(ChunkFrameError, ValueError):
    """Data does not fit the dataset's schema (append, multi-file source)."""


class NoTimeColumnError(SchemaMismatchError):
    """A time-based operation (last values, a time-range delete or filter) on a dataset
    ingested without a time column; the one error every such operation raises.

    ``consequence`` says what the missing column prevents; ``alternative`` (a :class:`Hint`)
    another way than re-ingesting, if there is one.

    >>> str(NoTimeColumnError("flights", "it has no last values")).split(";")[0]
    "dataset 'flights' has no time column, so it has no last values"
    """

    def __init__(self, dataset: str, consequence: str, alternative: Hint | None = None) -> None:
        self.dataset = dataset
        template = "re-ingest it with {} ({}) naming a datetime or integer column"
        terms: tuple[Arg | Call, ...] = (Arg("time_column"), Arg("mode", "overwrite"))
        if alternative is not None:
            template, terms = f"{template}, or {alternative.template}", terms + alternative.terms
        super().__init__(f"dataset {dataset!r} has no time column, so {consequence}",
                         hint=Hint(template, *terms))


class InvalidDatasetIdError(ChunkFrameError, ValueError):
    """A dataset id that could escape its directory or key space."""


class SourceError(ChunkFrameError, ValueError):
    """An ingest source that cannot be read or is empty."""


class BackendUnavailableError(ChunkFrameError, ConnectionError):
    """Redis, the chunk store or the catalog cannot be reached."""


class ContextError(ChunkFrameError, ValueError):
    """Bad input to the context cache (unknown type, empty key, unserialisable value)."""


class InvalidArgumentError(ChunkFrameError, ValueError):
    """An argument out of its range (``mode``, ``chunk_rows``, ...); nothing was touched."""


class PathNotFoundError(ChunkFrameError, FileNotFoundError):
    """A file or directory to read, or to write into, does not exist."""


class SnapshotSupersededError(ChunkFrameError):
    """A read began on a generation that an overwrite replaced (and removed) meanwhile.

    Dataset methods retry once on the new generation; only a long-running iteration
    (``iter_chunks``, ``export``) can see it.
    """

    def __init__(self, dataset: str, old: int, new: int | None) -> None:
        self.dataset, self.old, self.new = dataset, old, new
        super().__init__(
            f"dataset {dataset!r} was replaced (generation {old} -> {new}) while this read was "
            "running, and the old chunks are gone; run the read again to see the new data"
        )


class StateRepairedError(SnapshotSupersededError):
    """Redis's chunk table of a dataset disagreed with the catalog (the record) and was
    rebuilt from it while a read ran; dataset methods retry once, on the repaired table."""

    def __init__(self, dataset: str, generation: int, what: str) -> None:
        self.dataset, self.old, self.new = dataset, generation, generation
        self.disagreement = what
        ChunkFrameError.__init__(
            self,
            f"Redis's chunk table of dataset {dataset!r} disagreed with the catalog ({what}); "
            "it was rebuilt from the catalog and nothing from it was returned: run the read "
            "again",
        )


class StateCorruptionError(ChunkFrameError):
    """Redis, the catalog and a chunk file disagree about a dataset (or a Redis value is
    unreadable), and the catalog's record could not settle it; nothing was served."""

    def __init__(self, dataset: str, what: str) -> None:
        self.dataset, self.disagreement = dataset, what
        super().__init__(
            f"the state of dataset {dataset!r} is inconsistent: {what}. Nothing from it was "
            "returned",
            hint=Hint("run {} to rebuild Redis from the catalog and the chunk files",
                      Call.of("recover", apply=True)),
        )


class CatalogCorruptionError(ChunkFrameError):
    """The catalog file is damaged (unreadable pages, not a database, tables missing):
    nothing was read from it or written to it; the recoverer restores it."""

    def __init__(self, path: str, what: str) -> None:
        self.path, self.damage = path, what
        super().__init__(
            f"the catalog {path!r} is damaged ({what}); nothing was read from it or written "
            "to it",
            hint=Hint("run `chunkframe recover --apply` ({} in Python): it moves the file "
                      "aside and rebuilds the catalog from Redis and the chunk files",
                      Call.of("recover", apply=True)),
        )


class CatalogDamageError(CatalogCorruptionError, BackendUnavailableError):
    """A PostgreSQL catalog whose tables or values are damaged or missing: nothing was read
    from it or written to it; restore the database from a backup (chunkframe does not
    rebuild a shared database in place, as it does a SQLite file). A
    :class:`CatalogCorruptionError`, so one ``except`` catches damage of either database."""

    def __init__(self, location: str, what: str) -> None:
        self.path = self.location = location
        self.damage = what
        ChunkFrameError.__init__(
            self,
            f"the PostgreSQL catalog at {location!r} is damaged ({what}); nothing was read "
            "from it or written to it. Restore that database from a backup (pg_restore, or "
            "point-in-time recovery), then run `chunkframe recover --apply` to bring Redis and "
            "the chunk store in step with it")


class VersionNotFoundError(ChunkFrameError, KeyError):
    """A version of a dataset that was never made, or that ``prune_versions`` removed."""

    def __init__(self, dataset: str, asked: str, versions: list[int]) -> None:
        self.dataset, self.versions = dataset, versions
        have = (f"the versions it has are {_spans(versions)}" if versions
                else "it has no recorded versions")
        super().__init__(
            f"dataset {dataset!r} has no {asked}: {have} (older ones were pruned or never "
            "existed)",
            hint=Hint("open one of those with {}, or list them with ds.versions()",
                      Call.of("open", dataset, version=Placeholder("v"))),
        )

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ReadOnlyVersionError(ChunkFrameError, PermissionError):
    """A write (append, delete, prune...) on a dataset opened at an earlier version."""

    def __init__(self, dataset: str, version: int, what: str) -> None:
        self.dataset, self.version = dataset, version
        super().__init__(
            f"cannot {what} dataset {dataset!r} opened at version {version}: a version of the "
            "past is read-only",
            hint=Hint("write through the current dataset, {}", Call.of("open", dataset)),
        )


class DropPendingError(DatasetLockedError):
    """A write to a dataset whose drop was begun and not finished (a crash interrupted it)."""

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        super().__init__(
            f"dataset {dataset!r} is being dropped: a drop of it was begun and not finished "
            "(it was interrupted), so nothing may write to it until the drop is done",
            hint=Hint("finish the drop with {} (or run `chunkframe recover --apply`), then "
                      "ingest it anew", Call.of("drop", dataset)),
        )


class DatasetReferencedError(ChunkFrameError):
    """A drop of a dataset that named snapshots still reference."""

    def __init__(self, dataset: str, snapshots: list[str]) -> None:
        self.dataset, self.snapshots = dataset, snapshots
        shown = ", ".join(repr(s) for s in snapshots[:5]) + (
            f" and {len(snapshots) - 5} more" if len(snapshots) > 5 else "")
        super().__init__(
            f"cannot drop dataset {dataset!r}: "
            + (f"snapshots {shown} reference versions" if len(snapshots) > 1
               else f"snapshot {shown} references a version")
            + " of it, and dropping it would make them unreadable there; nothing was changed",
            hint=Hint("delete those snapshots with {} first, or drop it anyway with {} (the "
                      "snapshots then forget it)",
                      Call.of("delete_snapshot", Placeholder("name")),
                      Call.of("drop", dataset, force=True)),
        )


class SnapshotNotFoundError(ChunkFrameError, KeyError):
    """No named snapshot has this name."""

    def __init__(self, name: str, names: list[str]) -> None:
        import difflib

        self.name = name
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        known = (f"did you mean {close!r}" if close else
                 f"the snapshots are {names[:10]!r}" if names else "there are no snapshots")
        super().__init__(f"no snapshot named {name!r}; {known}",
                         hint=Hint("list them with {}", Call.of("snapshots")))

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class SnapshotExistsError(ChunkFrameError, FileExistsError):
    """A snapshot name that is already taken (snapshots are never replaced in place)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"a snapshot named {name!r} exists already; snapshots are never replaced, so "
            "nothing was recorded",
            hint=Hint("pick another name, or delete the old one first with {}",
                      Call.of("delete_snapshot", name)),
        )


def _spans(numbers: list[int]) -> str:
    """``[1, 2, 3, 5]`` as ``1-3, 5``: a long version history in a short message."""
    out: list[str] = []
    for n in sorted(numbers):
        if out and out[-1].split("-")[-1] == str(n - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return ", ".join(out)
