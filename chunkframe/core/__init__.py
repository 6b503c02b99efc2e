"""The vocabulary every layer shares: errors, the data model, keys, devices, settings."""
