"""Who may read what chunkframe creates: owner-only by default, or the owner's group."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidArgumentError

__all__ = ["PERMISSIONS", "Modes", "OWNER_ONLY", "modes", "make_dirs", "create_file"]

PERMISSIONS = ("owner", "group")
"""The values of ``permissions=`` / ``CHUNKFRAME_PERMISSIONS``: ``"owner"`` (the default)
creates directories 0700 and files 0600; ``"group"`` 0770 and 0660, for a store, catalog and
home shared by a team's group (make the group's directory setgid so new files keep it)."""


@dataclass(frozen=True)
class Modes:
    """The modes of the directories and files chunkframe creates."""

    dirs: int
    files: int


OWNER_ONLY = Modes(0o700, 0o600)
"""The default: only the owner can read or write."""

_MODES = {"owner": OWNER_ONLY, "group": Modes(0o770, 0o660)}


def modes(permissions: str) -> Modes:
    """The :class:`Modes` of a ``permissions`` setting, or :class:`InvalidArgumentError`.

    >>> oct(modes("owner").files), oct(modes("group").dirs)
    ('0o600', '0o770')
    """
    try:
        return _MODES[permissions]
    except (KeyError, TypeError):
        raise InvalidArgumentError(
            f"permissions must be one of {PERMISSIONS!r}, got {permissions!r}; use 'group' for "
            "a store and catalog shared by the members of your group (CHUNKFRAME_PERMISSIONS)"
        ) from None


def make_dirs(path: str | os.PathLike[str], mode: int) -> None:
    """Create ``path`` and its missing parents with exactly ``mode``, whatever the umask
    (``mkdir`` applies it, so each new directory is chmod-ed). Directories that exist are
    left as they are: their owner chose their mode."""
    missing = []
    current = Path(os.path.abspath(path))
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode)
        except FileExistsError:  # made meanwhile by another process: its mode stands
            continue
        os.chmod(directory, mode)


def create_file(path: str | os.PathLike[str], mode: int) -> bool:
    """Create an empty file at ``path`` with exactly ``mode`` unless it exists (an existing
    file keeps its mode); True if it was created. The file is never visible with a wider
    mode: it is created with ``mode`` (narrowed by the umask), then set to ``mode``."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return True
