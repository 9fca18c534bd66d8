"""The ingest flow: ordered stages that carry raw input to stored, enriched items."""
