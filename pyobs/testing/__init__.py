"""Helpers for testing pyobs modules and transports: throw-away servers on loopback.

Nothing here is used by the comm layer itself; it exists for tests, benchmarks and the examples.
"""
