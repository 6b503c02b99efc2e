"""In a real JupyterLab, driven through headless Chromium: ds.browse() reacts, tutorials run clean.

Needs Debian's ``chromium`` (``.ci/run`` installs it) and Playwright's Python package; never
downloads a browser. Skipped, with the reason, when either is missing.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pagetiming import STEP, WHEEL

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parent.parent
TUTORIALS = sorted((REPO / "notebooks").glob("*.ipynb"))
RUN_TIMEOUT = 120_000  # ms for a notebook's cells to run in the page
ERRORS = ("Traceback (most recent call last)", "Error displaying widget")

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y "
                "chromium; .ci/run does) to run the real-browser tests", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="Playwright is missing: pip install -e '.[test]'")
pytest.importorskip("jupyterlab", reason="JupyterLab is missing: pip install -e '.[test]'")

BROWSE_CELLS = [
    "import numpy as np\nimport pandas as pd\n\nimport chunkframe as cf\n\ncf.connect()",
    "n = 3_000\nrng = np.random.default_rng(1)\n"
    "frame = pd.DataFrame({'time': pd.date_range('2026-01-01', periods=n, freq='s', tz='UTC'),\n"
    "                      'dev': [f'd{i % 4}' for i in range(n)],\n"
    "                      'x': rng.normal(size=n), 'k': np.arange(n)})\n"
    "ds = cf.ingest(frame, 'lab', chunk_rows=400, time_column='time', device_column='dev',\n"
    "               mode='overwrite', progress=True)\n"
    "ds.tag('owner', 'ana in the data team', keywords=['q3'])",
    "b = ds.browse()\nb",
    "ds.tag('units', {'x': '°C'}, type='DATA')\n"
    "z = ds.plot('x', device='d1', interactive=True)\nz",
    "m0, s0 = ds.cache_info()['misses'], ds.cache_info()['skipped']\n"
    "z.view = [z.view[0], z.view[1] + 1]  # the view now, read again\n"
    "print('zoom-check', z.reads[-1][1], ds.cache_info()['misses'] - m0,\n"
    "      ds.cache_info()['skipped'] - s0, z.status)",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _notebook(cells: list[str]) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                        "language": "python"}},
            "cells": [{"cell_type": "code", "metadata": {}, "source": c, "outputs": [],
                       "execution_count": None, "id": f"c{i}"} for i, c in enumerate(cells)]}


def _settings(root: Path) -> Path:
    """Lab settings: every cell in the page (no windowing), no news or update checks."""
    settings = root / "settings"
    for plugin, values in {
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                        "checkForUpdates": False},
    }.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return settings


@pytest.fixture(scope="module")
def lab(redis_server, s3_server) -> Iterator[str]:
    """JupyterLab on a free loopback port with a token, a temp home and copies of the
    tutorials; yields the base URL with the token."""
    from ipykernel.kernelspec import write_kernel_spec

    root = Path(tempfile.mkdtemp(prefix="cfb-"))  # short: unix socket paths are limited
    work = root / "work"
    (work / "notebooks").mkdir(parents=True)
    (work / "data").symlink_to(REPO / "data")
    for path in TUTORIALS:
        shutil.copy(path, work / "notebooks" / path.name)
    (work / "notebooks" / "browse.ipynb").write_text(json.dumps(_notebook(BROWSE_CELLS)))
    data_dir = root / "jupyter-data"
    write_kernel_spec(data_dir / "kernels" / "python3")  # this interpreter, whatever is installed
    import s3fs

    bucket = f"cf-lab-{secrets.token_hex(4)}"
    s3fs.S3FileSystem(endpoint_url=s3_server.endpoint, key="testing", secret="testing").mkdir(bucket)
    (root / "home").mkdir()
    token, port = secrets.token_hex(16), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHUNKFRAME_", "JUPYTER"))}
    env.update(HOME=str(root / "home"), JUPYTER_DATA_DIR=str(data_dir),
               JUPYTER_CONFIG_DIR=str(root / "config"), JUPYTER_RUNTIME_DIR=str(root / "rt"),
               JUPYTERLAB_SETTINGS_DIR=str(_settings(root)),
               JUPYTERLAB_WORKSPACES_DIR=str(root / "workspaces"),
               CHUNKFRAME_HOME=str(root / "h"), CHUNKFRAME_REDIS_URL=redis_server.url,
               CHUNKFRAME_PREFIX=f"lab{secrets.token_hex(3)}",
               CHUNKFRAME_S3_ENDPOINT=s3_server.endpoint, CHUNKFRAME_S3_BUCKET=bucket,
               AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
    log = open(root / "lab.log", "wb")  # noqa: SIM115 - closed after the server stops
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", "--port-retries=0", f"--ServerApp.root_dir={work}",
         f"--IdentityProvider.token={token}", "--allow-root", "--LabApp.news_url="],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n"
                                + (root / "lab.log").read_text(errors="replace")[-3_000:])
                time.sleep(0.3)
        yield f"{base}|{token}"
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(lab) -> Iterator:
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, tmp_path, request) -> Iterator:
    """A fresh page; a full-page screenshot into the test's temp dir if the test fails."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    failed_before = request.session.testsfailed  # counted after the call, before teardown
    yield page
    if request.session.testsfailed > failed_before:
        shot = tmp_path / "failure.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failing page: {shot}")
    context.close()


def open_and_run(page, lab: str, name: str) -> None:
    """Open notebook ``name`` in JupyterLab, run all its cells, wait until they are done."""
    base, token = lab.split("|")
    page.goto(f"{base}/lab/tree/notebooks/{name}?token={token}&reset")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    page.wait_for_selector("#jp-main-statusbar :text('Idle')", timeout=60_000)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                .map(p => p.textContent.trim());
            if (prompts.some(p => p.includes('*'))) return false;
            const failed = document.querySelector('[data-mime-type="application/vnd.jupyter.stderr"]')
                && document.body.innerText.includes('Traceback');
            return failed || /\\d/.test(prompts[prompts.length - 1] || '');
        }""", timeout=RUN_TIMEOUT)


def assert_clean(page, name: str) -> None:
    text = page.locator(".jp-Notebook").inner_text()
    for marker in ERRORS:
        assert marker not in text, f"{name} shows {marker!r}:\n{text[-3_000:]}"


CURRENT = ".cf-browser .cf-grid tr.cf-current td:first-child"


def current_sn(page) -> int:
    return int(page.locator(CURRENT).inner_text().replace(",", ""))


def wait_current(page, sn: int) -> None:
    """Until the highlighted row is ``sn`` and no row of the window is pending."""
    page.wait_for_function(
        """sn => {
            const cell = document.querySelector('.cf-browser .cf-grid tr.cf-current td');
            const grid = document.querySelector('.cf-browser .cf-grid');
            return cell && cell.textContent.replace(/,/g, '') === String(sn)
                && grid.dataset.pending === '0';
        }""", arg=sn)


def timed_steps(page, how: str, count: int) -> list[float]:
    """``count`` steps of ``how`` ('click' on ▶, or a key), each timed click → DOM change."""
    out = []
    for _ in range(count):
        want = current_sn(page) + {"click": 1, "ArrowDown": 1, "PageDown": 20}[how]
        out.append(page.evaluate(STEP, [0, how, want]))
        wait_current(page, want)
    return out


def test_browse_scrolls_jumps_and_searches(page, lab):
    open_and_run(page, lab, "browse.ipynb")
    panel = page.locator(".cf-browser")
    panel.wait_for()
    assert_clean(page, "browse.ipynb")
    wait_current(page, 0)
    grid = panel.locator(".cf-grid")
    assert grid.locator("tbody tr:not([hidden])").count() == 20
    head = grid.locator("thead").inner_text()
    assert "datetime64[us, UTC]" in head and "float64" in head and "large_string" not in head
    assert "3,000 rows · 8 chunks · 4 devices" in panel.inner_text()
    box = panel.bounding_box()
    assert box is not None and box["height"] < 900, f"the panel is {box} tall"
    assert not panel.get_by_text("checksum").is_visible()  # chunk internals collapsed

    panel.locator("button", has_text="▶").click()
    wait_current(page, 1)
    grid.locator("tbody tr").nth(5).click()  # a click makes that row current, focuses
    wait_current(page, 5)
    before = page.evaluate("() => document.querySelector('.jp-Notebook .jp-Cell.jp-mod-active')"
                           ".getAttribute('data-windowed-list-index') || "
                           "[...document.querySelectorAll('.jp-Notebook .jp-Cell')].findIndex("
                           "c => c.classList.contains('jp-mod-active'))")
    for key, want in [("ArrowDown", 6), ("j", 7), ("k", 6), ("PageDown", 26), ("End", 2_999),
                      ("PageUp", 2_979), ("Home", 0)]:
        page.keyboard.press(key)
        wait_current(page, want)
    after = page.evaluate("() => document.querySelector('.jp-Notebook .jp-Cell.jp-mod-active')"
                          ".getAttribute('data-windowed-list-index') || "
                          "[...document.querySelectorAll('.jp-Notebook .jp-Cell')].findIndex("
                          "c => c.classList.contains('jp-mod-active'))")
    assert before == after, "JupyterLab took the keys: the active cell moved"
    grid.hover()
    page.mouse.wheel(0, 300)  # about 9 rows
    page.wait_for_function("() => document.querySelector('.cf-browser .cf-grid tr.cf-current td')"
                           ".textContent !== '0'")
    assert 3 <= current_sn(page) <= 20

    sn_box = panel.locator(".widget-inline-hbox:has(label:text-is('sn')) input")
    sn_box.fill("1234")
    sn_box.press("Enter")
    wait_current(page, 1_234)
    chunk = panel.locator(".widget-dropdown:has(label:text-is('chunk')) select")
    chunk.select_option(index=5)
    wait_current(page, 2_000)
    assert sn_box.input_value() == "2000"
    time_box = panel.get_by_placeholder("2026-01-05 13:00, Enter")
    time_box.fill("2026-01-01 00:30")
    time_box.press("Enter")
    wait_current(page, 1_800)
    page.wait_for_function("() => document.querySelector('.cf-browser svg.cf-spark')"
                           ".innerHTML.includes('around sn 1,800')")
    assert "time (UTC)" in panel.locator("svg.cf-spark").inner_html()

    panel.get_by_text("chunk 4 internals").click()
    page.wait_for_function("() => document.querySelector('.cf-browser').innerText"
                           ".includes('checksum')")
    panel.get_by_text("tags", exact=True).click()
    search = panel.get_by_placeholder("keyword, then Enter")
    search.fill("q3")
    search.press("Enter")
    page.wait_for_function("() => document.querySelector('.cf-browser')"
                           ".innerText.includes('ana in the data team')")
    search.fill("nothing-here")
    search.press("Enter")
    page.wait_for_function("() => document.querySelector('.cf-browser')"
                           ".innerText.includes('no tag of')")
    assert_clean(page, "browse.ipynb")

    clicks = timed_steps(page, "click", 9)
    keys = timed_steps(page, "ArrowDown", 9)
    pages = timed_steps(page, "PageDown", 9)
    median = {k: sorted(v)[len(v) // 2] for k, v in
              [("click ▶", clicks), ("key ↓", keys), ("PgDn", pages)]}
    print(f"browse() click → DOM change, median ms: {median}")
    assert median["key ↓"] < 100 and median["click ▶"] < 1_000 and median["PgDn"] < 1_000


def test_zoom_rereads_only_the_chunks_in_view(page, lab, tmp_path):
    open_and_run(page, lab, "browse.ipynb")
    plot = page.locator(".cf-zoom")
    plot.wait_for()
    assert_clean(page, "browse.ipynb")
    status = plot.locator(".cf-zoom-status")
    assert "750 rows · 8 of 8 chunks read" in status.inner_text()
    assert "x [°C]" in plot.inner_text() and "time (UTC)" in plot.inner_text()
    legend = plot.locator(".cf-zoom-legend").bounding_box()
    frame = plot.locator(".cf-zoom-frame").bounding_box()
    assert legend and frame and legend["x"] >= frame["x"] + frame["width"], "legend on the data"
    plot.screenshot(path=str(tmp_path / "zoom-all.png"))
    timings = [page.evaluate(WHEEL, -900) for _ in range(3)]  # each about 3.9 times closer
    plot.screenshot(path=str(tmp_path / "zoom-in.png"))
    text = status.inner_text()
    m = re.search(r"([\d,]+) rows? · (\d+) of 8 chunks read", text)
    assert m and int(m.group(2)) <= 2 and "readings" in text, text
    print(f"zoom wheel → redraw / → new data drawn, ms: {timings}")
    assert all(first < 100 and data < 2_000 for first, data, _ in timings), timings

    last = page.locator(".jp-Notebook .jp-Cell").last
    last.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    page.wait_for_function("() => [...document.querySelectorAll('.jp-OutputArea-output')]"
                           ".some(o => /zoom-check [0-2] /.test(o.innerText))")  # re-run
    out = next(t for t in page.locator(".jp-OutputArea-output").all_inner_texts()
               if "zoom-check" in t)
    _, planned, misses, skipped, *_ = out.split()
    assert int(planned) <= 2 and int(misses) <= int(planned), out  # only the chunks in view
    assert int(skipped) == 8 - int(planned), out  # the others ruled out by their statistics


def switch_theme(page, name: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Settings$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Theme$")).hover()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{name}$")).click()
    light = "true" if "Light" in name else "false"
    page.wait_for_selector(f"body[data-jp-theme-light='{light}']", state="attached")
    page.wait_for_timeout(500)  # the theme's stylesheet applies


# Everything of the panel that sticks out of its output area, at the output area's width now.
OVERFLOW = """() => {
    const panel = document.querySelector('.cf-browser');
    const out = panel.closest('.jp-OutputArea-output');
    const right = out.getBoundingClientRect().right + 1;
    const bad = [...panel.querySelectorAll('*')].filter(e => {
        const r = e.getBoundingClientRect();
        return r.width > 0 && r.right > right && !e.closest('.cf-grid-wrap table');
    }).map(e => e.tagName + '.' + [...e.classList].join('.'));
    const wrap = panel.querySelector('.cf-grid-wrap');
    return {bad: bad.slice(0, 8), panel: panel.scrollWidth - panel.clientWidth,
            table: wrap.scrollWidth - wrap.clientWidth, width: out.clientWidth};
}"""


@pytest.fixture(scope="module")
def browse_page(browser, lab) -> Iterator:
    """One page with the browse notebook run, shared by the layout tests."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    open_and_run(page, lab, "browse.ipynb")
    page.locator(".cf-browser .cf-grid tr.cf-current").wait_for()
    yield page
    context.close()


@pytest.fixture
def shared_page(browse_page, tmp_path, request) -> Iterator:
    failed_before = request.session.testsfailed
    yield browse_page
    if request.session.testsfailed > failed_before:
        shot = tmp_path / "failure.png"
        browse_page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failing page: {shot}")


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
@pytest.mark.parametrize("width", [1000, 1400])
def test_panel_fits_and_follows_the_theme(shared_page, tmp_path, width, theme):
    page = shared_page
    page.set_viewport_size({"width": width, "height": 900})
    switch_theme(page, theme)
    dark = "Dark" in theme
    panel = page.locator(".cf-browser")
    panel.scroll_into_view_if_needed()
    current = page.locator(".cf-browser .cf-grid tr.cf-current td").nth(1)
    other = page.locator(".cf-browser .cf-grid tbody tr:not(.cf-current) td").nth(1)
    assert current.evaluate("e => getComputedStyle(e).backgroundColor") != other.evaluate(
        "e => getComputedStyle(e).backgroundColor"), "the current row is not highlighted"
    text = luminance(page, ".cf-browser .cf-grid tbody tr:not(.cf-current) td")
    assert (text > 0.6) if dark else (text < 0.3)
    assert (luminance(page, ".cf-browser svg text", "fill") > 0.4) == dark
    natural = page.evaluate(OVERFLOW)
    panel.screenshot(path=str(tmp_path / "panel.png"))  # kept: what the test saw
    assert natural["bad"] == [] and natural["panel"] <= 0, natural
    page.evaluate("""() => {
        const out = document.querySelector('.cf-browser').closest('.jp-OutputArea-output');
        out.style.cssText += ';width:632px;max-width:632px;flex:0 0 632px';
    }""")
    page.wait_for_timeout(300)
    try:
        narrow = page.evaluate(OVERFLOW)
        panel.screenshot(path=str(tmp_path / "panel-632px.png"))
        assert narrow["width"] == 632
        assert narrow["bad"] == [] and narrow["panel"] <= 0 and narrow["table"] <= 0, narrow
        grid = page.locator(".cf-browser .cf-grid").bounding_box()
        plot = page.locator(".cf-browser svg.cf-spark").bounding_box()
        assert grid and plot and plot["y"] >= grid["y"] + grid["height"] - 1, "not stacked"
    finally:
        page.evaluate("""() => {
            const out = document.querySelector('.cf-browser').closest('.jp-OutputArea-output');
            out.style.width = out.style.maxWidth = out.style.flex = '';
        }""")


def luminance(page, selector: str, prop: str = "color") -> float:
    """Relative luminance (0 black .. 1 white) of the colour ``prop`` of ``selector``."""
    rgb = page.eval_on_selector(selector, f"e => getComputedStyle(e).{prop}")
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", rgb)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_shows_no_error(page, lab, path):
    open_and_run(page, lab, path.name)
    assert_clean(page, path.name)
