"""An example of a user's own encoder, audited with ``udl audit`` from outside the package.

    udl audit --encoder examples/my_encoder.py:make_encoder --claims II.1b,II.4a

Any object works as an encoder if it

- maps ``encoder(X, D, lam=λ, step=α, T=T)`` to codes ``Z_T`` of shape ``(..., p, n)`` for data
  ``X (..., m, n)`` and a dictionary ``D (..., m, p)`` (leading dimensions are independent
  instances), in X's dtype; optionally ``return_path=True`` returns z_0 … z_T stacked;
- declares ``capabilities``: a frozenset of names from ``udl.CAPABILITIES`` — say only what is
  true; a claim that needs a capability the encoder does not declare is reported NOT APPLICABLE.

Subclassing :class:`udl.Encoder` (implement ``layer``, optionally ``init``) gives the call,
``return_path`` and input validation for free, as here.
"""
import udl


class MomentumISTA(udl.Encoder):
    """Heavy-ball ISTA: z_{t+1} = P_{αλ}(A z_t + B + β(z_t − z_{t−1})), z_0 = z_{−1} = 0.

    With 0 ≤ β < 1 its fixed points are those of ISTA (the lasso solutions), so it keeps every
    capability of the reference: the same soft threshold αλ at every layer, and autograd
    through the layers.
    """

    name = "momentum-ista"
    capabilities = frozenset({"differentiable", "soft_threshold", "fixed_lambda"})

    def __init__(self, beta: float = 0.3):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta!r}")
        self.beta = float(beta)

    def init(self, X, D, *, lam, step):
        A, B, state = super().init(X, D, lam=lam, step=step)
        return A, B, {"Z": state["Z"], "Z_prev": state["Z"]}

    def layer(self, t, A, B, state, *, lam, step):
        Z, Z_prev = state["Z"], state["Z_prev"]
        Z_new = udl.soft_threshold(A @ Z + B + self.beta * (Z - Z_prev), step * lam)
        return {"Z": Z_new, "Z_prev": Z}

    def __repr__(self):
        return f"MomentumISTA(beta={self.beta})"


def make_encoder():
    """The factory named on the command line: ``examples/my_encoder.py:make_encoder``."""
    return MomentumISTA(beta=0.3)


if __name__ == "__main__":  # a quick look, not needed by udl audit
    inst = udl.make_instances(20, 40, 3, 10, seed=0)
    for T in (10, 50, 200):
        Z = make_encoder()(inst.X, inst.D_star, lam=0.1, step=0.2, T=T)
        Z_ref = udl.ista(inst.X, inst.D_star, lam=0.1, step=0.2, T=T)
        print(f"T = {T}: max |Z - ISTA's Z| = {float((Z - Z_ref).abs().max()):.2e}")
