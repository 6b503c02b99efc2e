"""Every tutorial notebook runs top to bottom, headless, against the suite's real servers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
QUICKSTART = NOTEBOOKS / "01_quickstart.ipynb"
# the quickstart runs once, on a fresh machine (the last test): its cells are the same with
# the suite's servers, so a second run against them would check nothing more
PATHS = sorted(p for p in NOTEBOOKS.glob("*.ipynb") if p != QUICKSTART)
CELL_TIMEOUT = 180
MAX_TEXT = 20_000  # characters of text output per notebook
MAX_IMAGE = 100_000  # bytes (base64) per image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A kernelspec that runs *this* interpreter: a python3 spec found on the machine may
    belong to another Python (without chunkframe), or there may be none at all."""
    from ipykernel.kernelspec import write_kernel_spec

    root = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(root / "chunkframe-tests")
    return "chunkframe-tests", str(root)


def _kernel_manager(kernel: tuple[str, str]):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    name, root = kernel
    return KernelManager(kernel_name=name,
                         kernel_spec_manager=KernelSpecManager(kernel_dirs=[root]))


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUNKFRAME_")}
    env.setdefault("AWS_ACCESS_KEY_ID", "testing")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(NOTEBOOKS.parent),
                                                      env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_notebook(path: Path, kernel: tuple[str, str], env: dict[str, str]):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, km=_kernel_manager(kernel), timeout=CELL_TIMEOUT, allow_errors=False,
        resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(env=env)
    return nb


def output_sizes(nb) -> tuple[int, list[int]]:
    """(characters of text output, base64 sizes of images)."""
    text, images = 0, []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "text" in out:
                text += len(out["text"])
            for mime, value in out.get("data", {}).items():
                if mime.startswith("image/"):
                    images.append(len(value))
                elif mime.startswith("text/") or mime.endswith("json"):
                    text += len(value if isinstance(value, str) else json.dumps(value))
    return text, images


@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs_top_to_bottom(path, kernel_name, redis_server, prefix, request):
    home = tempfile.mkdtemp(prefix="cfn-")  # short: unix socket paths are limited
    extra = {"CHUNKFRAME_HOME": home, "CHUNKFRAME_REDIS_URL": redis_server.url,
             "CHUNKFRAME_PREFIX": prefix}
    if "s3" in path.stem:
        s3_server = request.getfixturevalue("s3_server")
        extra.update(CHUNKFRAME_S3_ENDPOINT=s3_server.endpoint,
                     CHUNKFRAME_S3_BUCKET=request.getfixturevalue("s3_bucket"))
    try:
        nb = run_notebook(path, kernel_name, _clean_env(**extra))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert_small_outputs(path, nb)


def assert_small_outputs(path: Path, nb) -> None:
    text, images = output_sizes(nb)
    assert text < MAX_TEXT, f"{path.name} printed {text:,} characters; keep outputs small"
    assert all(size < MAX_IMAGE for size in images), f"{path.name}: images of {images} bytes"


@pytest.mark.timeout(900)
def test_quickstart_on_a_fresh_machine_uses_and_stops_the_embedded_redis(kernel_name):
    """Nothing configured: the notebook makes its own home, starts chunkframe's embedded
    redis-server there, and stops it and removes the home at the end."""
    tmp = tempfile.mkdtemp(prefix="cft-")
    try:
        nb = run_notebook(QUICKSTART, kernel_name, _clean_env(TMPDIR=tmp))
        assert_small_outputs(QUICKSTART, nb)
        assert not [p for p in Path(tmp).iterdir() if p.name.startswith("cf-")]
        leftover = subprocess.run(["pgrep", "-f", f"{tmp}/"], capture_output=True, text=True)
        assert not leftover.stdout.strip(), "the embedded redis-server was left running"
    finally:
        from chunkframe.storage.embedded import stop_server

        for home in Path(tmp).glob("cf-*"):  # the notebook failed before its clean-up cell
            stop_server(home)
        shutil.rmtree(tmp, ignore_errors=True)


def test_notebooks_are_committed_without_outputs():
    assert len(PATHS) >= 6, f"notebooks missing from {NOTEBOOKS}"
    for path in [QUICKSTART, *PATHS]:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, (
                    f"{path.name} has outputs: clear them before committing "
                    f"(jupyter nbconvert --clear-output --inplace {path.name})")


def test_the_kernel_runs_this_interpreter(kernel_name):
    spec = _kernel_manager(kernel_name).kernel_spec
    assert spec.argv[0] == sys.executable
