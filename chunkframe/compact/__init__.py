"""Copy-on-write versions: compaction (small chunks merged into full ones) and upserts."""

from .merge import Merge, compact, merge_runs
from .upsert import UpdateResult, update

__all__ = ["compact", "merge_runs", "Merge", "update", "UpdateResult"]
