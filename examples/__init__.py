"""Runnable clients of the voicebridge API; the test suite and benchmarks use them too."""
