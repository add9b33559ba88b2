"""Auditing an encoder: every applicable claim run against it, like scikit-learn's estimator checks.

A researcher who modifies the encoder (FISTA instead of ISTA, a hard threshold, a decaying λ,
learned step sizes) asks which theorems still hold, which now fail and which no longer apply.

Modules
-------
- :mod:`~udl.app.audit.encoders`: encoder specs (:func:`load_encoder`), the interface check
  (:func:`validate_encoder`), :class:`Declared`, the shipped encoders (:data:`SHIPPED`).
- :mod:`~udl.app.audit.results`: :class:`ClaimAudit`, :class:`AuditResult`, the outcomes
  (:data:`AUDIT_OUTCOMES`, :data:`UNEXPECTED`) and the audit directory (:func:`write_audit`).
- :mod:`~udl.app.audit.check`: :func:`check_encoder` (NOT APPLICABLE, expected failures, XPASS).
- :mod:`~udl.app.audit.plugin`: :func:`parametrize_with_claims` and :class:`ClaimCheck`, for a
  user's own pytest suite.
- :mod:`~udl.app.audit.matrix`: :func:`encoder_matrix`, the claims × encoders table with a
  sentence for each cell that differs from the reference ISTA (from the claims'
  ``audit_sentences``, :mod:`udl.engine.sentences`).
- :mod:`~udl.app.audit.cli`: ``udl audit`` (:func:`configure_cli`, :func:`main_cli`).

The names are loaded on first use (``from udl.app.audit import check_encoder``), so that the
``udl`` parser can import :mod:`udl.app.audit.cli` without loading torch.
"""

from __future__ import annotations

import importlib

#: Public name → the submodule of udl.app.audit that defines it.
_EXPORTS = {
    **dict.fromkeys(("SHIPPED", "CONTROLS_DECLARED_AS_REFERENCE", "EncoderSpecError", "EncoderInterfaceError",
                     "Declared", "load_encoder", "validate_encoder", "shipped_encoders", "learned_step_encoder",
                     "encoder_name"), "encoders"),
    **dict.fromkeys(("AUDIT_OUTCOMES", "UNEXPECTED", "NOT_APPLICABLE", "AUDIT_FILES", "ClaimAudit", "AuditResult",
                     "write_audit"), "results"),
    "check_encoder": "check",
    **dict.fromkeys(("ClaimNotHeld", "ClaimErrored", "ClaimCheck", "parametrize_with_claims"), "plugin"),
    **dict.fromkeys(("REFERENCE", "MATRIX_FILES", "encoder_matrix", "matrix_grid", "matrix_markdown", "matrix_notes",
                     "write_matrix", "cell_sentence"), "matrix"),
    **dict.fromkeys(("configure_cli", "main_cli"), "cli"),
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"udl.app.audit.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'udl.app.audit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
