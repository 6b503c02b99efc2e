"""The version is written once, in pyproject.toml, and read at run time."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import chunkframe as cf

ROOT = Path(__file__).resolve().parent.parent


def pyproject_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["project"]["version"]


def test_version_comes_from_the_package_metadata():
    assert cf.__version__ == metadata.version("chunkframe") == pyproject_version()
    assert "__version__ = \"" not in (ROOT / "chunkframe" / "__init__.py").read_text()


def test_a_source_tree_without_metadata_reads_pyproject(monkeypatch):
    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    assert cf._read_version() == pyproject_version()


def test_cli_version():
    out = subprocess.run([sys.executable, "-m", "chunkframe", "--version"], capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout
    assert out.split()[-1] == pyproject_version()
