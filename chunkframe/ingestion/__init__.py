"""Writing datasets: sources cut into chunks, persisted and committed under a lock."""
