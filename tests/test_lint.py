"""Lint as CI runs it: ruff, mypy and the layer contract, configured in pyproject.toml."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def check(*command: str, cwd: Path = ROOT) -> None:
    """Run ``python -m <command>`` (``python -c ...`` for a command that starts with ``-c``);
    fail with its output unless it exits 0."""
    argv = [sys.executable, *command] if command[0] == "-c" else [sys.executable, "-m", *command]
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}",
                    pytrace=False)


def test_ruff():
    check("ruff", "check", "chunkframe", "tests", "bench")


def test_mypy():
    check("mypy", "chunkframe")


def test_layers_import_downwards_only():
    """core <- storage <- ingestion, read <- features <- dataset <- session <- service <-
    frontends <- api (import-linter's layers contract in pyproject.toml)."""
    check("-c", "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports())")


def _module(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path) -> set[str]:
    """What ``path`` imports at run time, lazily in a function too (not under TYPE_CHECKING):
    module names and ``module.name`` for each name taken from a module."""
    tree = ast.parse(path.read_text())
    name = _module(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    annotations_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                        and "TYPE_CHECKING" in ast.unparse(node.test)
                        for stmt in node.body for n in ast.walk(stmt)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in annotations_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def import_cycles_within_packages(root: Path, package: str) -> list[list[str]]:
    """Cycles of modules of one package importing each other, a lazy import in a function
    included (import-linter's contracts leave those out); ``__init__`` modules re-export and
    do not count."""
    files = {_module(f, root): f for f in (root / package).rglob("*.py")
             if f.name != "__init__.py"}
    graph = {m: sorted(i for i in _imports(f, root) if i in files and i != m
                       and i.rpartition(".")[0] == m.rpartition(".")[0])
             for m, f in files.items()}
    cycles, done = [], set()

    def walk(m: str, path: list[str]) -> None:
        for n in graph[m]:
            if n in path:
                cycles.append(path[path.index(n):] + [n])
            elif n not in done:
                walk(n, path + [n])
        done.add(m)

    for m in sorted(graph):
        if m not in done:
            walk(m, [m])
    return cycles


def test_no_module_cycles_inside_a_package_lazy_imports_included():
    assert import_cycles_within_packages(ROOT, "chunkframe") == []


def test_a_lazy_import_closing_a_cycle_is_found(tmp_path):
    pkg = tmp_path / "p" / "sub"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import A\n")
    (pkg / "a.py").write_text("def f():\n    from .b import B\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nfrom . import a\n"
                              "if TYPE_CHECKING:\n    from .c import C\n")
    (pkg / "c.py").write_text("from .b import B\n")  # b -> c only for annotations: no cycle
    assert import_cycles_within_packages(tmp_path, "p") == [["p.sub.a", "p.sub.b", "p.sub.a"]]


def test_a_finding_fails_with_the_tools_output(tmp_path):
    (tmp_path / "bad.py").write_text("import os\n")
    with pytest.raises(pytest.fail.Exception, match=r"(?s)ruff check --isolated bad.py exited 1.*F401"):
        check("ruff", "check", "--isolated", "bad.py", cwd=tmp_path)


def test_an_import_for_types_only_pointing_up_a_layer_breaks_the_contract(tmp_path):
    """The contract sees imports under ``if TYPE_CHECKING:`` too (display/ once named
    dataset.py there, and dataset.py the session): the session option of pyproject.toml,
    run on a two-layer package whose lower layer names the upper one for types only."""
    import tomllib

    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "high.py").write_text("from . import low\n")
    (pkg / "low.py").write_text("from typing import TYPE_CHECKING\n"
                                "if TYPE_CHECKING:\n    from .high import X\n")
    exclude = str(options["exclude_type_checking_imports"]).lower()
    (tmp_path / ".importlinter").write_text(
        f"[importlinter]\nroot_package = pkg\nexclude_type_checking_imports = {exclude}\n\n"
        "[importlinter:contract:layers]\nname = layers\ntype = layers\n"
        "layers =\n    pkg.high\n    pkg.low\n")
    done = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, '.'); from importlinter.cli "
         "import lint_imports; sys.exit(lint_imports())"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "pkg.low is not allowed to import pkg.high" in done.stdout
