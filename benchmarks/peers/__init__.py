"""Third-party peers of the benchmarks (other SAM 2 implementations driven on the same weights)."""
