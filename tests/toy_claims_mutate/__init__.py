"""Toy claims on udl.core for the mutation machinery (tests/test_mutate.py): tiny float64
instances, each claim killed by one mutant of udl.engine.mutants and blind to the others."""
