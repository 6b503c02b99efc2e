"""The recoverer: finds and repairs what crashes leave between Redis, the catalog and the store."""

from .recoverer import PROBLEMS, Problem, Recoverer
from .repair import REPAIR_COLUMNS, recut_lost, repair_chunks

__all__ = ["PROBLEMS", "Problem", "Recoverer", "REPAIR_COLUMNS", "recut_lost",
           "repair_chunks"]
