"""Data: ingest a download into a manifest, validate it, synthesise a fake download, EDA."""
