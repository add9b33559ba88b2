"""Toy claims for tests/test_audit.py: tiny problems (milliseconds), each using ``ctx.encoder``."""
