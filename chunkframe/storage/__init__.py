"""Where datasets live: chunk bytes (codec, store), Redis state, the catalog."""
