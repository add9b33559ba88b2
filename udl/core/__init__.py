"""Core mathematics of unrolled dictionary learning: instances, encoders, the lean backward,
gradients, training, interpretation and metrics.

This layer imports nothing else of udl (``udl.engine`` and ``udl.app`` build on it). The names
below are re-exported by :mod:`udl`; see its docstring for the symbol table.
"""

from udl.core.data import Instances, coherence, make_instances, normalize_columns
from udl.core.encoders import (CAPABILITIES, FISTA, ISTA, Encoder, HardThresholdISTA, LambdaDecayISTA,
                       NoThreshold, UnscaledThresholdISTA, hard_threshold, ista, soft_threshold)
from udl.core.gradients import (KINDS, ConvergenceError, LassoSolution, decoder_gradient, gradient, gradients,
                        kkt_violation, lasso_gradient, lasso_solve, oracle_gradient)
from udl.core.interpret import contributions, gram_condition, reconstruction_coefficients, stationary_dictionary
from udl.core.metrics import align, code_error, dictionary_error, relative_error, support_recovery
from udl.core.training import Trajectory, train
from udl.core.unrolled import gradient_sweep
from udl.core.learned import LearnedStepISTA

__all__ = [
    "Instances", "make_instances", "normalize_columns", "coherence",
    "CAPABILITIES", "Encoder", "ISTA", "FISTA", "HardThresholdISTA", "LambdaDecayISTA", "NoThreshold",
    "UnscaledThresholdISTA", "soft_threshold", "hard_threshold", "ista",
    "KINDS", "gradient", "gradients", "decoder_gradient", "oracle_gradient", "lasso_solve",
    "lasso_gradient", "kkt_violation", "LassoSolution", "ConvergenceError",
    "contributions", "stationary_dictionary", "reconstruction_coefficients", "gram_condition",
    "align", "dictionary_error", "code_error", "support_recovery", "relative_error",
    "Trajectory", "train", "gradient_sweep", "LearnedStepISTA",
]
