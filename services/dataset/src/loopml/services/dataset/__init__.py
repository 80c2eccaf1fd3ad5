"""Dataset service: ingest, version, profile, preview and split datasets."""
