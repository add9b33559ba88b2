"""Toy claims for the honest-verdict machinery (numpy only, milliseconds each): a deterministic check,
a claim whose instances are copies, predictions and hypotheses, a claim that decides only at ci and
paper, and a reference quantity whose certificate fails."""
