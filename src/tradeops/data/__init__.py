"""Data level: ingest, clean/adjust, validate, versioned store, catalog."""
