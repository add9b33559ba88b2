"""Dictionary learning by (unrolled) gradient steps.

One step: compute a gradient estimator g of kind "dec", "ae-lasso" or "ae-ls" at the current D
(plus weight decay ωD), update D ← D − η g (or an Adam step), and optionally renormalise the
columns. Instances in the batch are trained independently and simultaneously.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from udl.core._validate import check_choice, check_int, check_matrix, check_nonneg, check_positive, check_same_batch
from udl.core.data import normalize_columns_unchecked
from udl.core.encoders import Encoder
from udl.core.estimators import KINDS, gradients
from udl.core.metrics import code_error_unchecked, dictionary_error_unchecked

__all__ = ["train", "Trajectory", "OPTIMIZERS"]

OPTIMIZERS = ("gd", "adam")


@dataclass(frozen=True)
class Trajectory:
    """The result of :func:`train`.

    Attributes
    ----------
    D : (B, m, p) final dictionary.
    steps : (L,) the recorded step numbers (0 = before training).
    loss : (L, B) least-squares loss ½‖X − D Z_T‖²/n at the recorded steps.
    dict_error : (L, B) relative Frobenius dictionary error (if D_star was given, else empty).
    dict_error_max : (L, B) max column error (if D_star was given).
    code_error : (L, B) max |z_T − z*| (if Z_star was given).
    grad_norm : (L, B) ‖g‖_F of the full update direction (gradient + ωD).
    col_norm_min, col_norm_max : (L, B) smallest and largest column norm ‖D_j‖ of D at the
        recorded steps (both 1 to rounding when the columns are renormalised after each step).
    """

    D: torch.Tensor
    steps: torch.Tensor
    loss: torch.Tensor
    dict_error: torch.Tensor
    dict_error_max: torch.Tensor
    code_error: torch.Tensor
    grad_norm: torch.Tensor
    col_norm_min: torch.Tensor
    col_norm_max: torch.Tensor


def train(X: torch.Tensor, D0: torch.Tensor, *, kind: str, lam, step, T: int, lr: float,
          n_steps: int, optimizer: str = "gd", normalize: bool = True, omega: float = 0.0,
          batch_size: int | None = None, seed: int = 0, D_star: torch.Tensor | None = None,
          Z_star: torch.Tensor | None = None, encoder: Encoder | None = None,
          record_every: int = 1, progress=None) -> Trajectory:
    """Learn a dictionary with gradient estimator ``kind``.

    Parameters
    ----------
    X : (..., m, n) training data.  D0 : (..., m, p) initial dictionary.
    kind : {"dec", "ae-lasso", "ae-ls"}
    lam, step, T : encoder hyper-parameters λ, α, T.
    lr : float > 0
        Learning rate η (gradient descent) or Adam's step size.
    n_steps : int ≥ 0
        Number of dictionary updates.
    optimizer : {"gd", "adam"}
    normalize : bool
        Renormalise the columns of D after each step (the paper's learning experiments).
    omega : float ≥ 0
        Weight decay: the objective adds (ω/2)‖D‖²_F to the mean-over-examples loss.
    batch_size : int, optional
        Minibatch of examples per step (same columns for every instance; drawn from a
        generator seeded with ``seed``); default: full batch.
    D_star, Z_star : optional ground truth for the error trajectories.
    encoder : Encoder, optional (reference ISTA by default).
    record_every : int
        Record the trajectory every this many steps (and at the last step).
    progress : callable, optional
        Called with 1 after each step.

    Returns
    -------
    Trajectory
    """
    check_choice("kind", kind, KINDS)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_matrix("D0", D0)
    check_matrix("X", X, rows=D0.shape[-2], rows_name="m, the rows of D0")
    check_same_batch(X=X, D0=D0)
    lr = float(check_positive("lr", lr))
    omega = float(check_nonneg("omega", omega))
    n_steps = check_int("n_steps", n_steps, low=0)
    record_every = check_int("record_every", record_every, low=1)
    n = X.shape[-1]
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, low=1, high=n)
    seed = check_int("seed", seed, low=0)
    if D_star is not None:
        check_matrix("D_star", D_star, rows=D0.shape[-2], cols=D0.shape[-1])
        check_same_batch(X=X, D0=D0, D_star=D_star)
    if Z_star is not None:
        check_matrix("Z_star", Z_star, rows=D0.shape[-1], cols=n)
        check_same_batch(X=X, D0=D0, Z_star=Z_star)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))

    D = D0.detach().clone()
    adam = torch.optim.Adam([D], lr=lr) if optimizer == "adam" else None
    rec = {k: [] for k in ("steps", "loss", "dict_error", "dict_error_max", "code_error", "grad_norm",
                           "col_norm_min", "col_norm_max")}

    def record(l, Z_T, g):
        rec["steps"].append(l)
        rec["loss"].append(0.5 * (X - D @ Z_T).square().sum(dim=(-2, -1)) / n)
        rec["grad_norm"].append(torch.linalg.matrix_norm(g))
        norms = torch.linalg.vector_norm(D, dim=-2)
        rec["col_norm_min"].append(norms.amin(dim=-1))
        rec["col_norm_max"].append(norms.amax(dim=-1))
        if D_star is not None:
            e = dictionary_error_unchecked(D, D_star)
            rec["dict_error"].append(e["fro"])
            rec["dict_error_max"].append(e["max_col"])
        if Z_star is not None:
            rec["code_error"].append(code_error_unchecked(Z_T, Z_star))

    for l in range(n_steps + 1):
        Xb = X if batch_size is None else X[..., torch.randperm(n, generator=gen)[:batch_size].to(X.device)]
        g, Z_T = gradients(Xb, D, lam=lam, step=step, T=T, kinds=(kind,), encoder=encoder, return_code=True)
        g = g[kind] + omega * D if omega > 0 else g[kind]
        if l % record_every == 0 or l == n_steps:
            if batch_size is not None:     # record on the full data set, not the minibatch
                Z_T = gradients(X, D, lam=lam, step=step, T=T, kinds=("dec",), encoder=encoder,
                                return_code=True)[1]
            record(l, Z_T, g)
        if l == n_steps:
            break
        with torch.no_grad():
            if adam is None:
                D -= lr * g
            else:
                D.grad = g
                adam.step()
            if normalize:
                D.copy_(normalize_columns_unchecked(D))
        if progress is not None:
            progress(1)
    stack = lambda v: torch.stack(v) if v else torch.empty(0)  # noqa: E731
    return Trajectory(D=D.detach(), steps=torch.tensor(rec["steps"]), loss=stack(rec["loss"]),
                      dict_error=stack(rec["dict_error"]), dict_error_max=stack(rec["dict_error_max"]),
                      code_error=stack(rec["code_error"]), grad_norm=stack(rec["grad_norm"]),
                      col_norm_min=stack(rec["col_norm_min"]), col_norm_max=stack(rec["col_norm_max"]))
