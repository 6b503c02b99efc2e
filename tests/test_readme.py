"""The README's short tour runs as written: on a fresh home and right after the demo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TOUR_TIMEOUT = 240


def tour_block(text: str) -> str:
    """The python block of the README's "A short tour" section."""
    parts = re.split(r"^## ", text, flags=re.M)
    section = next((p for p in parts if p.startswith("A short tour")), None)
    if section is None:
        raise AssertionError("README.md has no '## A short tour' section")
    blocks = re.findall(r"^```python\n(.*?)^```", section, flags=re.S | re.M)
    if len(blocks) != 1:
        raise AssertionError(f"the short tour should hold one python block, found {len(blocks)}")
    return blocks[0]


@pytest.fixture
def tour(tmp_path, redis_server, prefix):
    """Run commands as a new user would, in a fresh working directory beside the repository's
    data/ (the tour reads data/samples/), with a fresh home on the suite's Redis."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "data").symlink_to(ROOT / "data")
    (work / "tour.py").write_text(tour_block(README.read_text()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUNKFRAME_")}
    (tmp_path / "tmp").mkdir()
    env.update(CHUNKFRAME_HOME=str(tmp_path / "home"), CHUNKFRAME_REDIS_URL=redis_server.url,
               CHUNKFRAME_PREFIX=prefix, TMPDIR=str(tmp_path / "tmp"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=TOUR_TIMEOUT)
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done

    run.work = work  # type: ignore[attr-defined]
    run.tmp = tmp_path / "tmp"  # type: ignore[attr-defined]
    return run


def test_the_tour_runs_on_a_fresh_home(tour):
    tour("tour.py")
    assert (tour.tmp / "sensors.csv").stat().st_size > 0  # the export step wrote its file...
    assert sorted(p.name for p in tour.work.iterdir()) == ["data", "tour.py"]  # ...not here
    tour("tour.py")  # and again: running it twice is what a reader does


def test_the_range_reads_after_the_tour_skip_chunks(tour):
    """The tour keeps the demo's chunking, so the next section's date range skips chunks."""
    text = README.read_text()
    section = text.split("## Range reads", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"^```python\n(.*?)^```", section, flags=re.S | re.M)
    (tour.work / "range.py").write_text(
        tour_block(text) + block + 'assert ds.cache_info()["skipped"] > 0, ds.cache_info()\n')
    tour("-m", "chunkframe", "demo", "--no-progress")
    tour("range.py")


def test_the_tour_runs_right_after_the_demo(tour):
    tour("-m", "chunkframe", "demo", "--no-progress")
    tour("tour.py")


def test_the_tour_block_is_found_or_named_missing():
    assert "cf.connect()" in tour_block(README.read_text())
    with pytest.raises(AssertionError, match="no '## A short tour' section"):
        tour_block("# chunkframe\n\n## Layout\n")
    with pytest.raises(AssertionError, match="one python block, found 0"):
        tour_block("## A short tour\n\n```bash\nls\n```\n")


def _fenced_after(text: str, heading: str) -> str:
    section = text.split(heading, 1)[1]
    return section.split("```", 2)[1]


@pytest.mark.parametrize(("doc", "heading"), [("README.md", "## Layout"),
                                               ("CONTRIBUTING.md", "## Layers")])
def test_the_layout_names_every_package_and_core_module(doc, heading):
    block = _fenced_after((ROOT / doc).read_text(), heading)
    package = ROOT / "chunkframe"
    subpackages = sorted(p.name for p in package.iterdir() if (p / "__init__.py").exists())
    assert [p for p in subpackages if f"{p}/" not in block] == []
    core = sorted(p.stem for p in (package / "core").glob("*.py") if p.stem != "__init__")
    assert [m for m in core if m not in block] == []


def test_readme_links_every_notebook_by_its_number_and_the_examples():
    text = README.read_text()
    assert not re.findall(r"(?<!\[)notebook \d\d", text)  # every "notebook NN" is a link...
    links = re.findall(r"\[notebook (\d\d)\]\((notebooks/(\d\d)_\w+\.ipynb)\)", text)
    assert links and all(n == m and (ROOT / path).exists() for n, path, m in links)  # ...right
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"(notebooks/{nb.name})" in text, f"README does not link {nb.name}"
    range_reads = text.split("## Range reads", 1)[1].split("\n## ", 1)[0]
    assert "(notebooks/09_range_reads_and_arrow.ipynb)" in range_reads
    assert "[`examples/`](examples/)" in text
    for script in (ROOT / "examples").glob("*.py"):
        assert f"(examples/{script.name})" in text


def test_readme_says_how_to_open_the_notebooks():
    text = README.read_text()
    assert 'python3 -m pip install -e ".[notebook]" && jupyter lab notebooks/' in text
    with (ROOT / "pyproject.toml").open("rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    assert any(req.startswith("jupyterlab") for req in extras["notebook"])
