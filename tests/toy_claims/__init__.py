"""Toy claims that exercise the engine in the tests (numpy only, milliseconds each)."""
