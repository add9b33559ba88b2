"""An unrolled encoder with learned per-layer step sizes and thresholds (LISTA-style, ALISTA-lean).

Layer t of :class:`LearnedStepISTA` is a proximal-gradient step of its own step size and
threshold,

    z_{t+1} = P_{θ_t}(z_t − α_t Dᵀ(D z_t − x)),   α_t = α·a_t,   θ_t = α_t·λ·b_t,

with learned positive scales ``a`` (steps) and ``b`` (thresholds), one per learned layer. The
matrices stay those of the dictionary (no learned weight matrices), so the encoder is
differentiable in D (and in a, b) and costs one batched matmul per layer, as ISTA.

Depth. The encoder has ``layers`` learned layers; at a depth T beyond them, layer t ≥ K reuses
the last learned layer (a_{K−1}, b_{K−1}). Its tail is therefore ISTA at step α·a_{K−1} on the
lasso with λ·b_{K−1}: for α·a_{K−1} < 2/‖D‖₂² the codes converge to that lasso solution.

Capabilities. Always ``differentiable`` and ``soft_threshold`` (every layer soft-thresholds);
``fixed_lambda`` only when every threshold scale is exactly 1 (θ_t = α_t·λ: every layer is a
proximal step on the same lasso objective), i.e. when only the steps are learned.
"""
from __future__ import annotations

import hashlib
import math

import torch

from udl.core._validate import check_int, check_nonneg, check_positive
from udl.core.encoders import Encoder
from udl.core.threshold import shrink

__all__ = ["LearnedStepISTA"]

#: Default upper bound of the learned step scale a_t in :meth:`LearnedStepISTA.learn`. ISTA is
#: stable for α·a < 2/L; the claims use α = 0.2 on unit-norm dictionaries whose L = ‖D‖₂² is
#: ≈ 5–6 and, for small random ones (m = 8–20), can reach ≈ 7–8: a ≤ 1.25 (α·a ≤ 0.25 < 2/8)
#: keeps the reused last layer convergent on every claim's instances.
MAX_STEP_SCALE = 1.25


def _scales(name: str, value) -> torch.Tensor | None:
    """``value`` as a 0-d or 1-D floating tensor (a tensor is kept as given, so its graph is kept)."""
    if value is None:
        return None
    tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(value, dtype=torch.float64)
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    if tensor.ndim > 1 or tensor.numel() == 0:
        raise ValueError(f"{name} must be a number or a non-empty 1-D sequence (one scale per layer), "
                         f"got shape {tuple(tensor.shape)}")
    return tensor


class LearnedStepISTA(Encoder):
    """ISTA with learned per-layer step sizes α·a_t and thresholds α·a_t·λ·b_t.

    Parameters
    ----------
    step_scales : sequence or 1-D tensor, optional
        a_t > 0, one per learned layer (default ones: the reference steps). A tensor with
        ``requires_grad`` is used as is, so the scales can be trained by backpropagation.
    threshold_scales : sequence or 1-D tensor, optional
        b_t ≥ 0, one per learned layer (default ones: the threshold αλ of each layer's step).
    layers : int, optional
        Number of learned layers K (default: the length of the given scales, else 1); a
        scalar scale is repeated over the K layers.

    Notes
    -----
    Layers beyond K reuse the last learned layer (see the module docstring). ``repr`` carries a
    digest of the scales, so two encoders with different scales never share a cached result.
    """

    name = "learned-step"

    def __init__(self, step_scales=None, threshold_scales=None, *, layers: int | None = None):
        a, b = _scales("step_scales", step_scales), _scales("threshold_scales", threshold_scales)
        lengths = {t.numel() for t in (a, b) if t is not None and t.ndim == 1}
        if layers is not None:
            lengths.add(check_int("layers", layers, low=1))
        if len(lengths) > 1:
            raise ValueError(f"step_scales, threshold_scales and layers disagree on the number of layers: "
                             f"{sorted(lengths)}")
        K = lengths.pop() if lengths else 1
        a = torch.ones(K, dtype=torch.float64) if a is None else (a.reshape(1).expand(K) if a.ndim == 0 else a)
        b = torch.ones(K, dtype=torch.float64) if b is None else (b.reshape(1).expand(K) if b.ndim == 0 else b)
        check_positive("step_scales", a.detach())
        check_nonneg("threshold_scales", b.detach())
        self.step_scales, self.threshold_scales = a, b

    # ------------------------------------------------------------------ interface
    @property
    def layers(self) -> int:
        """Number of learned layers K."""
        return int(self.step_scales.numel())

    @property
    def capabilities(self) -> frozenset:
        caps = {"differentiable", "soft_threshold"}
        if bool((self.threshold_scales.detach() == 1).all()):
            caps.add("fixed_lambda")
        return frozenset(caps)

    def parameters(self) -> list[torch.Tensor]:
        """The learnable tensors ``[step_scales, threshold_scales]`` (for an optimiser)."""
        return [self.step_scales, self.threshold_scales]

    def init(self, X, D, *, lam, step):
        """Precompute DᵀD and DᵀX (the per-layer step enters each layer) and z₀ = 0."""
        DtD = D.mT @ D
        DtX = D.mT @ X
        Z0 = torch.zeros(torch.broadcast_shapes(DtD.shape[:-2], DtX.shape[:-2]) + DtX.shape[-2:],
                         dtype=X.dtype, device=X.device)
        return DtD, DtX, {"Z": Z0}

    def layer(self, t, A, B, state, *, lam, step):
        k = min(t, self.layers - 1)
        alpha = step * self.step_scales[k].to(B)
        theta = alpha * lam * self.threshold_scales[k].to(B)
        Z = state["Z"]
        return {"Z": shrink(Z - alpha * (A @ Z - B), theta)}

    def __repr__(self) -> str:
        a = self.step_scales.detach().to("cpu", torch.float64)
        b = self.threshold_scales.detach().to("cpu", torch.float64)
        digest = hashlib.sha256(a.numpy().tobytes() + b"|" + b.numpy().tobytes()).hexdigest()[:10]

        def short(v):
            items = [f"{x:.3g}" for x in v.tolist()]
            return "[" + ", ".join(items if len(items) <= 4 else items[:3] + ["…", items[-1]]) + "]"

        return (f"LearnedStepISTA(layers={self.layers}, step_scales={short(a)}, "
                f"threshold_scales={short(b)}, digest={digest})")

    def __getstate__(self):
        return {"step_scales": self.step_scales.detach().clone(),
                "threshold_scales": self.threshold_scales.detach().clone()}

    def __setstate__(self, state):
        self.step_scales, self.threshold_scales = state["step_scales"], state["threshold_scales"]

    # ------------------------------------------------------------------ learning
    @classmethod
    def learn(cls, X: torch.Tensor, D: torch.Tensor, *, lam: float, step: float, layers: int = 10,
              target: torch.Tensor | None = None, n_steps: int = 100, lr: float = 0.05,
              learn_steps: bool = True, learn_thresholds: bool = True,
              max_step_scale: float = MAX_STEP_SCALE) -> "LearnedStepISTA":
        """Fit the per-layer scales of a K-layer encoder by gradient descent (Adam).

        The loss after ``layers`` layers is the relative code error
        mean ‖Z_K − target‖²_F/‖target‖²_F when ``target`` (e.g. the true codes Z*) is given,
        otherwise the lasso objective ½‖X − DZ_K‖²_F/n + λ‖Z_K‖₁/n, averaged over the batch.
        Deterministic: no randomness is involved.

        Parameters
        ----------
        X : (..., m, n) training data.  D : (..., m, p) dictionary.
        lam, step : λ ≥ 0 and the base step α > 0 (the encoder's call uses the same).
        layers : learned layers K.  target : (..., p, n) codes to regress on, optional.
        n_steps, lr : Adam steps and learning rate (on log b and the logit of a/max_step_scale).
        learn_steps, learn_thresholds : which scales are learned (the others stay 1).
        max_step_scale : upper bound of a_t (a_t = max_step_scale·sigmoid(u_t)).

        Returns
        -------
        LearnedStepISTA
            With detached scales.
        """
        layers = check_int("layers", layers, low=1)
        n_steps = check_int("n_steps", n_steps, low=0)
        check_positive("lr", lr)
        if not max_step_scale > 1:
            raise ValueError(f"max_step_scale must be > 1 (the reference step is scale 1), got {max_step_scale!r}")
        X, D = X.detach(), D.detach()
        # u = logit(1/max): a starts at exactly 1 (the reference step); v = 0: b starts at 1
        u0 = -math.log(max_step_scale - 1.0)
        u = torch.full((layers,), u0, dtype=X.dtype, device=X.device, requires_grad=learn_steps)
        v = torch.zeros(layers, dtype=X.dtype, device=X.device, requires_grad=learn_thresholds)
        params = [p for p, on in ((u, learn_steps), (v, learn_thresholds)) if on]
        optimiser = torch.optim.Adam(params, lr=lr) if params else None
        n = X.shape[-1]

        def scales():
            a = max_step_scale * torch.sigmoid(u) if learn_steps else torch.ones_like(u)
            b = torch.exp(v) if learn_thresholds else torch.ones_like(v)
            return a, b

        for _ in range(n_steps if optimiser is not None else 0):
            a, b = scales()
            Z = cls(a, b)(X, D, lam=lam, step=step, T=layers)
            if target is not None:
                loss = ((Z - target).square().sum(dim=(-2, -1)) / target.square().sum(dim=(-2, -1))).mean()
            else:
                fit = 0.5 * (X - D @ Z).square().sum(dim=(-2, -1)) / n
                loss = (fit + lam * Z.abs().sum(dim=(-2, -1)) / n).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            a, b = scales()
        # a scale that is not learned is exactly 1 (so fixed_lambda is kept when b is not learned)
        return cls(a.detach().to("cpu", torch.float64), b.detach().to("cpu", torch.float64))
