"""Benchmark harness: a driver (runs in our interpreter) and workers (run in ours or in pyobs-core's venv).

Nothing in this package imports ``pyobs`` at module level, so the same files serve both venvs.
"""
