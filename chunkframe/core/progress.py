"""Progress bars: the notebook widget form under Jupyter, text elsewhere, nothing if disabled."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar"]


class _Silent:
    """Stands in for a bar when progress is off."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass


def progress_bar(total: int | None, desc: str, enabled: bool | None = True, unit: str = "rows") -> Any:
    """A ``tqdm.auto`` bar; ``enabled=None`` shows it only on an interactive terminal/notebook."""
    if enabled is None:
        enabled = _interactive()
    if not enabled:
        return _Silent()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False)


def _interactive() -> bool:
    if "ipykernel" in sys.modules:
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())
