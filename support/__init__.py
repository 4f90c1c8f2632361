"""Helpers the tests and the benchmarks share (never imported by the project itself)."""
