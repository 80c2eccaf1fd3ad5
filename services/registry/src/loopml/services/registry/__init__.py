"""Registry service: models, immutable versions, aliases, lineage, artifacts."""
