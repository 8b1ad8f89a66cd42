"""Ingestion: from a corpus on disk to a searchable collection."""
