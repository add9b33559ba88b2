"""The audit in a user's own pytest suite: :func:`parametrize_with_claims` gives one test per claim,
as scikit-learn's ``parametrize_with_checks`` (not-applicable claims skipped with the reason,
expected failures ``xfail(strict=True)``); each test calls a :class:`ClaimCheck`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from udl.app.audit.check import (check_encoder, choose_claims, expectations, missing_capabilities,
                                 not_applicable_reason)
from udl.app.audit.encoders import as_dtype, encoder_name, load_encoder, validate_encoder
from udl.app.audit.results import NOT_APPLICABLE, ClaimAudit
from udl.app.options import AUDIT_PROFILE
from udl.engine.defaults import DEFAULT_PACKAGE

__all__ = ["ClaimNotHeld", "ClaimErrored", "ClaimCheck", "parametrize_with_claims"]


class ClaimNotHeld(AssertionError):
    """Raised by a :class:`ClaimCheck` when its claim does not PASS (FAIL or INCONCLUSIVE)."""


class ClaimErrored(RuntimeError):
    """Raised by a :class:`ClaimCheck` when its claim's simulation or decision raised (ERROR)."""


@dataclass
class ClaimCheck:
    """One claim run against one encoder; calling it raises unless the claim PASSES.

    Made by :func:`parametrize_with_claims`. Each check is its own run (decided at the claim's
    own α, as ``udl verify --claims ID``; :func:`check_encoder` Holm-adjusts across claims).
    """

    claim: Any
    encoder: Any
    profile: str = AUDIT_PROFILE
    seed: int = 0
    device: str = "cpu"
    dtype: Any = "float64"
    result: ClaimAudit | None = field(default=None, repr=False)

    def __call__(self) -> ClaimAudit:
        audit = check_encoder(self.encoder, profile=self.profile, claims=[self.claim], seed=self.seed,
                              device=self.device, dtype=self.dtype, validate=False)
        line = audit.claims[self.claim.id]
        self.result = line
        if line.outcome == "ERROR":
            raise ClaimErrored(f"{line.id} ERROR for {audit.name}: {line.error}")
        if line.outcome == NOT_APPLICABLE:
            import pytest

            pytest.skip(f"{line.id} NOT APPLICABLE: {line.reason}")
        if line.outcome != "PASS":
            raise ClaimNotHeld(f"{line.id} {line.outcome} for {audit.name}: {line.reason}")
        return line

    def __repr__(self) -> str:
        return f"ClaimCheck({self.claim.id}, {encoder_name(self.encoder)}, {self.profile})"


def parametrize_with_claims(encoder, *, profile: str = AUDIT_PROFILE, claims=None,
                            expected_failures: Mapping[str, str] | None = None, seed: int = 0,
                            device: str = "cpu", dtype="float64", package=DEFAULT_PACKAGE):
    """A ``pytest.mark.parametrize`` over ``(claim_id, check)`` for every claim, as scikit-learn's
    ``parametrize_with_checks``::

        from udl import parametrize_with_claims

        @parametrize_with_claims(MyEncoder(), expected_failures={CLAIM_ID: "no λ floor by design"})
        def test_udl(claim_id, check):
            check()

    Not-applicable claims are skipped with the missing capability as the reason; expected
    failures are ``xfail(strict=True, raises=ClaimNotHeld)``: a claim that then PASSES fails the
    test (XPASS is strict), and an ERROR is never taken for the expected failure.

    Parameters
    ----------
    encoder : object or str (a spec for :func:`load_encoder`).
    profile, claims, expected_failures, seed, device, dtype, package : as :func:`check_encoder`.

    Returns
    -------
    pytest.MarkDecorator
    """
    import pytest

    if isinstance(encoder, str):
        encoder = load_encoder(encoder)
    dtype = as_dtype(dtype)
    caps = validate_encoder(encoder, device=device, dtype=dtype)
    chosen, available = choose_claims(claims, package)
    expected = expectations(expected_failures, available)
    name = encoder_name(encoder)
    params = []
    for cid, claim in chosen.items():
        check = ClaimCheck(claim, encoder, profile=profile, seed=seed, device=device, dtype=dtype)
        missing = missing_capabilities(claim, caps)
        if missing:
            marks = [pytest.mark.skip(reason=f"{cid} NOT APPLICABLE: {not_applicable_reason(missing, name, caps)}")]
        elif cid in expected:
            marks = [pytest.mark.xfail(reason=expected[cid], strict=True, raises=ClaimNotHeld)]
        else:
            marks = []
        params.append(pytest.param(cid, check, id=cid, marks=marks))
    return pytest.mark.parametrize(("claim_id", "check"), params)
