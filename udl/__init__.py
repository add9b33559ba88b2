"""udl — a theorem-verification harness for unrolled dictionary learning.

Tolooshams & Ba, "Interpretable Unrolled Dictionary Learning Networks" / "Stable and
Interpretable Unrolled Dictionary Learning" (TMLR 2022).

Notation (shapes carry leading batch dimensions ``...`` of independent instances):

==========  =================  ==========================================================
symbol      shape              meaning
==========  =================  ==========================================================
X           (..., m, n)        data, one example per column, X = D* Z* (+ noise)
D, D*       (..., m, p)        dictionary / true dictionary (unit-norm columns)
Z, Z*       (..., p, n)        codes / true s-sparse codes
z_t, Z_T    (..., p, n)        ISTA iterate t / encoder output after T layers
λ (lam)     scalar             sparsity weight; threshold αλ
α (step)    scalar             ISTA step size
η (lr)      scalar             dictionary learning rate
ω (omega)   scalar             weight decay
μ           (...)              mutual coherence max_{i≠j} |⟨D*_i, D*_j⟩|
δ_j         (..., p)           column distance ‖D_j − D*_j‖
g           (..., m, p)        gradient with respect to D (dec, ae-lasso, ae-ls, g*, ĝ)
G           (..., n, n)        Z̃ᵀZ̃ + ωI (never formed: see udl.core.interpret)
β           (..., n, k)        reconstruction coefficients G⁻¹Z̃ᵀẑ
==========  =================  ==========================================================

Layers (each imports only those below it; ``lint-imports`` enforces it, see
``docs/architecture.md``):

* :mod:`udl.core` — the mathematics (instances, encoders, lean backward, gradients, training,
  interpretation, metrics);
* :mod:`udl.engine` — the claims engine (claim anatomy, cells and seeds, runner, decision rules,
  executors, cache, run directories); its ``__init__`` is the facade for claim authors;
* the claims (the top-level ``claims/`` package), one module per theorem;
* :mod:`udl.app` — the applications (``udl`` command, report, compare, audit).

``import udl`` loads the core only; :func:`check_encoder` and :func:`parametrize_with_claims`
(application layer) are loaded on first use.

Losses average over examples: L = ½‖X − DZ‖²_F / n; the lasso loss adds λ‖Z‖₁ / n.
"""
from udl import _compat, core

__version__ = "0.1.0"

#: Application-layer names exported lazily (importing them loads udl.app.audit).
_APP = {"check_encoder": "udl.app.audit", "parametrize_with_claims": "udl.app.audit"}

__all__ = [*core.__all__, *_APP]


def __getattr__(name: str):
    if name in _APP:
        import importlib

        value = getattr(importlib.import_module(_APP[name]), name)
    elif name in core.__all__:
        value = getattr(core, name)
    else:
        raise AttributeError(f"module 'udl' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


_compat.install()
