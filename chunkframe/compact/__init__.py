"""Compaction: small chunks merged into full ones as a new version."""

from .merge import Merge, compact, merge_runs

__all__ = ["compact", "merge_runs", "Merge"]
