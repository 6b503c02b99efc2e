"""Notebook views of a dataset (ipywidgets, with a text fallback)."""
