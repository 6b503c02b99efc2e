"""Last values per series, after Apache IoTDB's last cache."""
