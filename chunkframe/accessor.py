"""pandas accessors ``df.chunk`` and ``series.chunk`` (filled in by the accessor issue)."""
