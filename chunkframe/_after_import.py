"""Run a function right after a module is first imported: `import chunkframe` registers the
pandas accessors without importing pandas itself (which the command line's --help need not pay).

A meta-path finder stands in front of the module once: it lets the other finders find it,
wraps the loader for that one import, and after the module has executed puts the real loader
back and calls the function. If the module is already imported the function runs at once.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

__all__ = ["after_import"]


def after_import(name: str, func: Callable[[], object]) -> None:
    """Call ``func()`` once top-level module ``name`` is imported: now if it already is, else
    right after its import finishes (an error in ``func`` is a warning: the import succeeds)."""
    if name in sys.modules:
        func()
    else:
        sys.meta_path.insert(0, _Watch(name, func))


class _Watch(importlib.abc.MetaPathFinder):
    def __init__(self, name: str, func: Callable[[], object]):
        self.name, self.func = name, func
        self._lock = threading.Lock()

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        with self._lock:
            if self not in sys.meta_path:
                return None
            sys.meta_path.remove(self)  # once; and the search below must not find us again
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _Then(spec.loader, self.func)
        return spec


class _Then(importlib.abc.Loader):
    """The real loader, and ``func()`` once the module has executed."""

    def __init__(self, loader: Any, func: Callable[[], object]):
        self.loader, self.func = loader, func

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.loader, attr)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        try:
            self.loader.exec_module(module)
        finally:  # the module keeps no trace of this wrapper
            if module.__spec__ is not None:
                module.__spec__.loader = self.loader
            module.__loader__ = self.loader
        try:
            self.func()
        except Exception as exc:  # noqa: BLE001 - never fail the user's import of the module
            warnings.warn(f"after importing {module.__name__}: {exc!r}", RuntimeWarning,
                          stacklevel=2)
