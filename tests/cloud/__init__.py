"""Opt-in live cloud tests (see docs/testing.md, "Live cloud tests")."""
