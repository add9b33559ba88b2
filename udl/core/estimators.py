"""Gradients of the unrolled dictionary-learning losses with respect to D.

All losses average over the n examples (columns of X):

    L(Z, D)       = ½‖X − D Z‖²_F / n            (least squares)
    L_λ(Z, D)     = L(Z, D) + λ‖Z‖₁ / n           (lasso)

Estimators of the dictionary gradient, each ``(..., m, p)``:

- ``g_dec``      = (D Z_T − X) Z_Tᵀ / n            (Z_T held constant; the analytic gradient)
- ``g_ae-lasso`` = d L_λ(Z_T(D), D) / dD            (backpropagated through all T layers)
- ``g_ae-ls``    = d L(Z_T(D), D) / dD              (backpropagated through all T layers)
- ``g*``         = (D Z* − X) Z*ᵀ / n               (oracle: the true codes)
- ``ĝ``          = (D Ẑ − X) Ẑᵀ / n                 (Ẑ a certified lasso solution; Danskin)

:func:`gradients` and :func:`gradient_sweep` validate their arguments once, bring λ into its
internal form (:func:`udl.core.threshold.as_lam`) once, and then take one of two paths: the lean
one of :mod:`udl.core.unrolled` for the reference ISTA, or plain autograd through any other
encoder (called through its public interface, with the caller's λ). The lasso solver and its
certificate live in :mod:`udl.core.lasso` (re-exported here).
"""
from __future__ import annotations

import torch

from udl.core._validate import check_choice, check_int, check_xdz, validate_encoder_args
from udl.core.encoders import Encoder, ISTA, is_reference
from udl.core.lasso import ConvergenceError, LassoSolution, kkt_violation, lasso_solve
from udl.core.threshold import as_lam
from udl.core.unrolled import STORAGES, lean_applicable, lean_gradients, lean_sweep

__all__ = [
    "KINDS", "gradient", "gradients", "gradient_sweep", "decoder_gradient", "oracle_gradient",
    "lasso_solve", "lasso_gradient", "kkt_violation", "LassoSolution", "ConvergenceError",
]

#: The three gradient estimators of the paper.
KINDS = ("dec", "ae-lasso", "ae-ls")

_REFERENCE = ISTA()


def decoder_gradient(X: torch.Tensor, D: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
    """∇₂L(Z, D) = (D Z − X) Zᵀ / n for fixed codes ``Z (..., p, n)`` → ``(..., m, p)``."""
    check_xdz(X, D, Z)
    return _decoder_gradient(X, D, Z)


def _decoder_gradient(X, D, Z):
    """Unchecked (D Z − X) Zᵀ / n for internal use."""
    return (D @ Z - X) @ Z.mT / X.shape[-1]


def oracle_gradient(X: torch.Tensor, D: torch.Tensor, Z_star: torch.Tensor) -> torch.Tensor:
    """g* = (D Z* − X) Z*ᵀ / n, the desired direction at D with the true codes.

    Parameters
    ----------
    X : (..., m, n) data.  D : (..., m, p) dictionary.  Z_star : (..., p, n) true codes.

    Returns
    -------
    (..., m, p) tensor.
    """
    check_xdz(X, D, Z_star, "Z_star")
    return _decoder_gradient(X, D, Z_star)


def lasso_gradient(X: torch.Tensor, D: torch.Tensor, *, lam: float, tol: float | None = None,
                   max_iter: int = 100_000):
    """ĝ = (D Ẑ − X) Ẑᵀ / n at a certified lasso solution Ẑ (the gradient of the lasso value).

    Returns
    -------
    (g_hat, solution) : ``(..., m, p)`` tensor and the :class:`LassoSolution` with its
    certificate. Raises :class:`ConvergenceError` if the certificate is not reached.
    """
    sol = lasso_solve(X, D, lam=lam, tol=tol, max_iter=max_iter)
    return _decoder_gradient(X, D, sol.Z), sol


def _check_kinds(kinds) -> tuple:
    kinds = tuple(kinds)
    for k in kinds:
        check_choice("kind", k, KINDS)
    return kinds


def _check_differentiable(encoder, kinds) -> None:
    backprop = [k for k in kinds if k != "dec"]
    if backprop and "differentiable" not in encoder.capabilities:
        raise ValueError(f"kind {backprop[0]!r} needs a differentiable encoder; {encoder!r} is not")


def gradients(X: torch.Tensor, D: torch.Tensor, *, lam, step, T: int, kinds=KINDS,
              encoder: Encoder | None = None, return_code: bool = False):
    """Several gradient estimators from one forward pass through the encoder.

    Parameters
    ----------
    X : (..., m, n) data.  D : (..., m, p) dictionary.
    lam, step, T : encoder hyper-parameters λ ≥ 0 (float, or tensor ``(...)``), α > 0, T ≥ 0
        (see :func:`udl.ista`).
    kinds : iterable of {"dec", "ae-lasso", "ae-ls"}
    encoder : Encoder, optional
        Defaults to the reference ISTA. "ae-*" kinds need the "differentiable" capability.
    return_code : bool
        Also return the code ``Z_T (..., p, n)`` (detached).

    Returns
    -------
    dict kind → ``(..., m, p)`` tensor  (and ``Z_T`` if ``return_code``).
    Batch entries are independent: entry b is the gradient of instance b's own loss.
    """
    kinds = _check_kinds(kinds)
    T = validate_encoder_args(X, D, lam, step, T)
    encoder = _REFERENCE if encoder is None else encoder
    _check_differentiable(encoder, kinds)
    out, Z_T = _gradients(X, D, lam, as_lam(lam, X), step, T, kinds, encoder)
    return (out, Z_T) if return_code else out


def _gradients(X, D, lam_arg, lam, step, T: int, kinds: tuple, encoder):
    """Unchecked :func:`gradients` → (dict kind → gradient, Z_T). ``lam`` in its internal form;
    ``lam_arg`` the caller's λ, which a generic encoder is called with."""
    if is_reference(encoder) and lean_applicable(lam, step):
        # one forward, one backward for all kinds (udl.core.unrolled): the "ae" adjoints are stacked
        return lean_gradients(X, D, lam=lam, step=float(step), T=T, kinds=kinds)
    out = {}
    backprop = [k for k in kinds if k != "dec"]
    if backprop:
        D_ = D.detach().requires_grad_(True)
        with torch.enable_grad():
            Z_T = encoder(X.detach(), D_, lam=lam_arg, step=step, T=T)
            ls, lasso = _losses(X.detach(), D_, Z_T, lam)
            for i, k in enumerate(backprop):
                (g,) = torch.autograd.grad(ls if k == "ae-ls" else lasso, D_,
                                           retain_graph=i < len(backprop) - 1)
                out[k] = g
        Z_T = Z_T.detach()
    else:
        with torch.no_grad():
            Z_T = encoder(X, D, lam=lam_arg, step=step, T=T)
    if "dec" in kinds:
        out["dec"] = _decoder_gradient(X, D.detach(), Z_T)
    return {k: out[k] for k in kinds}, Z_T


def _losses(X, D, Z, lam):
    """Least-squares and lasso losses (scalars) summed over the batch, each averaged over the
    examples; λ in its internal form (one per instance)."""
    n = X.shape[-1]
    ls = 0.5 * (X - D @ Z).square().sum() / n
    return ls, ls + (lam * Z.abs().sum(dim=(-2, -1), keepdim=True)).sum() / n


def gradient(X: torch.Tensor, D: torch.Tensor, *, kind: str, lam, step, T: int,
             encoder: Encoder | None = None) -> torch.Tensor:
    """One gradient estimator ``kind`` in {"dec", "ae-lasso", "ae-ls"} → ``(..., m, p)``.

    See :func:`gradients` for the parameters.
    """
    check_choice("kind", kind, KINDS)
    return gradients(X, D, lam=lam, step=step, T=T, kinds=(kind,), encoder=encoder)[kind]


def gradient_sweep(X: torch.Tensor, D: torch.Tensor, *, lam, step, T_max: int | None = None,
                   kinds=KINDS, depths=None, encoder: Encoder | None = None,
                   chunk: int | None = None, storage: str = "index",
                   max_stack: int | None = None, compact: bool | None = None) -> dict:
    """The gradient estimators at every depth T of the unrolled encoder, in one pass family.

    For the reference ISTA, one forward pass stores the iterates (exactly, sparse), then the
    adjoint chains of all depths run backward together, stacked so that each layer is one
    large matmul: Σ_T T layer-adjoints in T_max steps, instead of T_max separate unrolls
    (:func:`udl.core.unrolled.lean_sweep`). g_dec at depth T needs only Z_T. The instances of a
    batch are swept one after the other (buffers reused). Other encoders fall back to one
    :func:`gradients` call per depth.

    Parameters
    ----------
    X : (..., m, n) data.  D : (..., m, p) dictionary.
    lam, step : encoder hyper-parameters λ ≥ 0 (float, or tensor ``(...)``), α > 0.
    T_max : int ≥ 0
        Deepest depth; ``depths`` defaults to 1 … T_max.
    kinds : iterable of {"dec", "ae-lasso", "ae-ls"}
    depths : iterable of int ≥ 0, optional
        The depths to report (any order, repeats allowed); at most ``T_max`` if both are given.
    encoder : Encoder, optional (reference ISTA by default).
    chunk, storage : see :func:`udl.core.unrolled.unrolled_ista`.
    compact : bool, optional
        Keep the stacked adjoints on the supports while that is cheaper (see
        :mod:`udl.core.unrolled.sweep`); default: on CPU yes, on GPUs no (dense GEMMs are fast
        there, and the compact layout has data-dependent shapes, so it waits for the device
        every layer). Same results.
    max_stack : int, optional
        Most depths whose adjoints are stacked at once (memory: 3 × max_stack × #ae-kinds × p × n
        numbers); more are swept in blocks, at the same arithmetic cost. Default: as many as fit
        in :data:`udl.core.unrolled.sweep.SWEEP_STACK_BYTES`.

    Returns
    -------
    dict kind → tensor ``(len(depths), ..., m, p)`` over the broadcast batch shape ``...`` of X,
    D (and λ); entry ``[i, b]`` is the gradient of instance b's own loss at ``depths[i]``, equal
    to ``udl.gradients(X[b], D[b], ..., T=depths[i])[kind]`` up to rounding.
    """
    kinds = _check_kinds(kinds)
    check_choice("storage", storage, STORAGES)
    if depths is None:
        if T_max is None:
            raise ValueError("gradient_sweep needs T_max or depths")
        T_max = check_int("T_max", T_max, low=0)
        depths = list(range(1, T_max + 1))
    else:
        depths = [check_int("depth", T, low=0) for T in depths]
        if T_max is not None:
            T_max = check_int("T_max", T_max, low=0)
            if depths and max(depths) > T_max:
                raise ValueError(f"depths go up to {max(depths)} > T_max={T_max}")
    validate_encoder_args(X, D, lam, step, max(depths, default=0))
    if max_stack is not None:
        max_stack = check_int("max_stack", max_stack, low=1)
    if chunk is not None:
        chunk = check_int("chunk", chunk, low=1)
    encoder = _REFERENCE if encoder is None else encoder
    lam_arg, lam = lam, as_lam(lam, X)
    batch = torch.broadcast_shapes(X.shape[:-2], D.shape[:-2], lam.shape[:-2])
    m, p = D.shape[-2:]
    if not depths or not kinds:
        return {k: X.new_zeros((len(depths),) + batch + (m, p)) for k in kinds}
    uniq = sorted(set(depths))
    if is_reference(encoder) and lean_applicable(lam, step):
        res = lean_sweep(X, D, lam=lam, step=float(step), depths=uniq, kinds=kinds, chunk=chunk,
                         storage=storage, max_stack=max_stack, compact=compact)
    else:                                                          # generic: one unroll per depth
        _check_differentiable(encoder, kinds)
        Xe, De = X.expand(batch + X.shape[-2:]), D.expand(batch + D.shape[-2:])   # per instance
        per = [_gradients(Xe, De, lam_arg, lam, step, T, kinds, encoder)[0] for T in uniq]
        res = {k: torch.stack([g[k] for g in per]) for k in kinds}
    if depths == uniq:
        return res
    index = torch.tensor([uniq.index(T) for T in depths], device=X.device)
    return {k: res[k].index_select(0, index) for k in kinds}
