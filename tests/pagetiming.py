"""Timings taken inside the page (JavaScript for Playwright's ``page.evaluate``): event to DOM change.

Shared by tests/test_browser.py and bench/bench_notebook.py. Each starts ``performance.now()``
just before the event and resolves when a MutationObserver sees the change wanted.
"""

from __future__ import annotations

__all__ = ["STEP", "CURRENT", "WHEEL"]

# One step of browse() panel ``i`` ('click' on ▶, or a key sent to its row window), until
# the highlighted row shows serial number ``want`` and no row is pending: milliseconds.
STEP = """async ([i, how, want]) => {
    const panel = document.querySelectorAll('.cf-browser')[i];
    const grid = panel.querySelector('.cf-grid');
    const done = () => {
        const cell = grid.querySelector('tr.cf-current td');
        return cell && cell.textContent.replace(/,/g, '') === String(want)
            && grid.dataset.pending === '0';
    };
    return await new Promise(resolve => {
        const t0 = performance.now();
        const seen = new MutationObserver(() => {
            if (done()) { seen.disconnect(); resolve(performance.now() - t0); }
        });
        seen.observe(grid, {subtree: true, childList: true, characterData: true,
                            attributes: true});
        if (how === 'click') {
            [...panel.querySelectorAll('button')].find(b => b.textContent === '▶').click();
        } else {
            grid.dispatchEvent(new KeyboardEvent('keydown', {key: how, bubbles: true}));
        }
    });
}"""

# The serial number of the highlighted row of panel ``i``.
CURRENT = """i => Number(document.querySelectorAll('.cf-browser')[i]
    .querySelector('.cf-grid tr.cf-current td').textContent.replace(/,/g, ''))"""

# One wheel event of ``deltaY`` over the middle of the zoomable plot: [ms to the first
# redraw, ms to the kernel's new series drawn (the status line changes, nothing awaited),
# the status line then].
WHEEL = """async (deltaY) => {
    const el = document.querySelector('.cf-zoom');
    const box = el.querySelector('.cf-zoom-box');
    const status = el.querySelector('.cf-zoom-status');
    const before = status.textContent;
    const r = box.getBoundingClientRect();
    return await new Promise(resolve => {
        const t0 = performance.now();
        let first = null;
        const seen = new MutationObserver(() => {
            if (first === null) first = performance.now() - t0;
            if (status.textContent !== before && el.dataset.waiting === 'false') {
                seen.disconnect();
                resolve([first, performance.now() - t0, status.textContent]);
            }
        });
        seen.observe(el, {subtree: true, childList: true, characterData: true});
        box.dispatchEvent(new WheelEvent('wheel', {deltaY, clientX: r.left + r.width / 2,
            clientY: r.top + r.height / 2, bubbles: true, cancelable: true}));
    });
}"""
