"""The recoverer: finds and repairs what crashes leave between Redis, the catalog and the store."""

from .recoverer import PROBLEMS, Problem, Recoverer

__all__ = ["PROBLEMS", "Problem", "Recoverer"]
