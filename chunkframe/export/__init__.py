"""Datasets streamed out chunk by chunk to Parquet, CSV, Arrow or JSON lines."""
