"""Side-by-side speed and memory benchmarks of sam2kit and the reference ``sam2`` package.

Run from the repository root, e.g. ``python -m benchmarks.run``; never collected as tests.
"""
