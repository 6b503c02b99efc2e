"""The query flow: snapshots, the chunk cache, rows and batch gathers."""
