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
G           (..., n, n)        Z̃ᵀZ̃ + ωI (never formed: see udl.interpret)
β           (..., n, k)        reconstruction coefficients G⁻¹Z̃ᵀẑ
==========  =================  ==========================================================

Losses average over examples: L = ½‖X − DZ‖²_F / n; the lasso loss adds λ‖Z‖₁ / n.
"""
from .data import Instances, coherence, make_instances, normalize_columns
from .encoders import (CAPABILITIES, FISTA, ISTA, Encoder, HardThresholdISTA, LambdaDecayISTA,
                       NoThreshold, UnscaledThresholdISTA, hard_threshold, ista, soft_threshold)
from .gradients import (KINDS, ConvergenceError, LassoSolution, decoder_gradient, gradient, gradients,
                        kkt_violation, lasso_gradient, lasso_solve, oracle_gradient)
from .interpret import contributions, gram_condition, reconstruction_coefficients, stationary_dictionary
from .metrics import align, code_error, dictionary_error, relative_error, support_recovery
from .training import Trajectory, train
from .unrolled import gradient_sweep
from .learned import LearnedStepISTA
from .audit import check_encoder, parametrize_with_claims

__version__ = "0.1.0"

__all__ = [
    "Instances", "make_instances", "normalize_columns", "coherence",
    "CAPABILITIES", "Encoder", "ISTA", "FISTA", "HardThresholdISTA", "LambdaDecayISTA", "NoThreshold",
    "UnscaledThresholdISTA", "soft_threshold", "hard_threshold", "ista",
    "KINDS", "gradient", "gradients", "decoder_gradient", "oracle_gradient", "lasso_solve",
    "lasso_gradient", "kkt_violation", "LassoSolution", "ConvergenceError",
    "contributions", "stationary_dictionary", "reconstruction_coefficients", "gram_condition",
    "align", "dictionary_error", "code_error", "support_recovery", "relative_error",
    "Trajectory", "train", "gradient_sweep",
]
