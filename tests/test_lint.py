"""Lint as CI runs it: ruff, mypy and the layer contract, configured in pyproject.toml."""

from __future__ import annotations

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


def test_a_finding_fails_with_the_tools_output(tmp_path):
    (tmp_path / "bad.py").write_text("import os\n")
    with pytest.raises(pytest.fail.Exception, match=r"(?s)ruff check --isolated bad.py exited 1.*F401"):
        check("ruff", "check", "--isolated", "bad.py", cwd=tmp_path)
