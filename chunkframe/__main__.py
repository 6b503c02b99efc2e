"""``python -m chunkframe``: the command line (see :mod:`chunkframe.frontends.cli`)."""

from __future__ import annotations

import sys

from .frontends.cli import main

if __name__ == "__main__":
    sys.exit(main())
