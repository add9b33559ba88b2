"""Core mathematics of unrolled dictionary learning: instances, encoders, the lean backward,
gradients, training, interpretation and metrics.

This layer imports nothing else of udl (``udl.engine`` and ``udl.app`` build on it). The names
below are re-exported by :mod:`udl`; see its docstring for the symbol table. They are loaded on
first use (``import udl.core`` itself imports neither torch nor scipy), so that the ``udl``
command answers ``--help`` and argument errors quickly.
"""


from __future__ import annotations

import importlib

#: Public name → the submodule of udl.core that defines it.
_EXPORTS = {
    **dict.fromkeys(("Instances", "make_instances", "normalize_columns", "coherence"), "data"),
    **dict.fromkeys(("CAPABILITIES", "Encoder", "ISTA", "FISTA", "HardThresholdISTA", "LambdaDecayISTA",
                     "NoThreshold", "UnscaledThresholdISTA", "soft_threshold", "hard_threshold", "ista"),
                    "encoders"),
    **dict.fromkeys(("KINDS", "gradient", "gradients", "gradient_sweep", "decoder_gradient", "oracle_gradient",
                     "lasso_gradient"), "estimators"),
    **dict.fromkeys(("lasso_solve", "kkt_violation", "LassoSolution", "ConvergenceError"), "lasso"),
    **dict.fromkeys(("contributions", "stationary_dictionary", "reconstruction_coefficients",
                     "gram_condition"), "interpret"),
    **dict.fromkeys(("align", "dictionary_error", "code_error", "support_recovery", "relative_error"),
                    "metrics"),
    **dict.fromkeys(("Trajectory", "train"), "training"),
    "LearnedStepISTA": "learned",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"udl.core.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'udl.core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
