"""Benchmarks of the training commands (`python -m benchmarks training_precision | training_captions`)."""
