"""Reproducible speed and quality measurements; run each as ``python -m benchmarks.NAME`` from the
repository root (see benchmarks/README.md)."""
