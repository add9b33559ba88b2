"""The engine's defaults that the ``udl`` command offers before anything is computed: the profiles
every claim defines (``--profile``) and the package claims are discovered in
(``--claims-package``).

This module imports nothing, so that the ``udl`` parser can name them without loading torch
(``udl --help`` answers at once).
"""

__all__ = ["PROFILES", "DEFAULT_PACKAGE"]

#: Profiles every claim defines, from a smoke test to the paper's sizes.
PROFILES = ("quick", "ci", "paper")
#: The claims package a run discovers unless told otherwise (the top-level ``claims/``).
DEFAULT_PACKAGE = "claims"
