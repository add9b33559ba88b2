"""The engine's defaults that the ``udl`` command offers before anything is computed: the profiles
every claim defines (``--profile``) and the package claims are discovered in
(``--claims-package``).

This module imports nothing, so that the ``udl`` parser can name them without loading torch
(``udl --help`` answers at once).
"""

__all__ = ["PROFILES", "DEFAULT_PACKAGE", "OWN_CLAIMS"]

#: Profiles every claim defines, from a smoke test to the paper's sizes.
PROFILES = ("quick", "ci", "paper")
#: The claims package a run discovers unless told otherwise: udl's own claims, which live in the
#: ``claims/`` folder at the root of the repository and are installed as ``udl.claims``.
DEFAULT_PACKAGE = "udl.claims"
#: The two names of udl's own claims: ``udl.claims`` (installed) and ``claims`` (the folder, as a
#: top-level package, in a checkout: the tests, lint-imports and runs recorded before the move use it).
#: Either name, when not importable, stands for the other (:func:`udl.engine.discovery.resolve_package_name`).
OWN_CLAIMS = ("udl.claims", "claims")
