"""Auditing an encoder: every applicable claim run against it (:func:`check_encoder`).

- An encoder declares its **capabilities** (``encoder.capabilities``, a set of names from
  :data:`udl.CAPABILITIES`); a claim declares the ones it ``requires``. A claim whose
  requirements are not all declared is **NOT APPLICABLE**, with the missing capability as the
  reason — never FAIL, never silently absent.
- :func:`check_encoder` runs every applicable claim with ``Context(encoder=encoder)`` in one run
  of :func:`udl.engine.runner.run` (so the PASS tests are Holm-adjusted across the claims that ran)
  and returns an :class:`~udl.app.audit.results.AuditResult`.
- **Expected failures** (``{claim id: reason}``) are reported XFAIL when the claim does not hold
  (FAIL, or INCONCLUSIVE) and **XPASS** when it PASSES. XPASS is strict, as pytest's
  ``xfail_strict`` and scikit-learn's expected-failed checks: it makes the audit not ok, because
  the expectation is stale. An ERROR is never an expected failure.
"""
from __future__ import annotations

import time
from typing import Mapping

from udl.app.audit.encoders import as_dtype, encoder_name, load_encoder, validate_encoder
from udl.app.audit.results import NOT_APPLICABLE, AuditResult, ClaimAudit, fmt
from udl.app.options import AUDIT_PROFILE
from udl.engine.anatomy import Claim, Context
from udl.engine.defaults import DEFAULT_PACKAGE, PROFILES
from udl.engine.discovery import discover, select_claims
from udl.engine.runner import run as run_claims

__all__ = ["check_encoder", "choose_claims", "expectations", "missing_capabilities", "not_applicable_reason"]


def choose_claims(claims, package) -> tuple[dict, dict]:
    """(chosen ``{id: claim}``, available ``{id: claim}`` for expectations) from the ``claims`` argument."""
    if claims is not None and not isinstance(claims, str):
        items = list(claims.values()) if isinstance(claims, Mapping) else list(claims)
        if items and all(isinstance(c, Claim) for c in items):
            chosen = {}
            for claim in items:
                if claim.id in chosen:
                    raise ValueError(f"claim {claim.id!r} given twice")
                chosen[claim.id] = claim
            chosen = dict(sorted(chosen.items()))
            return chosen, chosen
        if not all(isinstance(c, str) for c in items):
            raise TypeError("claims must be None, a comma-separated string, ids/theorem ids, or Claim instances")
        tokens = items
    else:
        tokens = None if claims is None else claims.split(",")
    available = discover(package)
    if tokens is None:
        return available, available
    if not tokens or any(not t.strip() for t in tokens):
        raise ValueError(f"empty claim id in {claims!r}")
    return select_claims(available, tokens), available


def expectations(expected_failures, available: Mapping) -> dict[str, str]:
    """``{claim id: reason}`` from ``{id or theorem id: reason}``; unknown ids raise ValueError."""
    if not expected_failures:
        return {}
    if not isinstance(expected_failures, Mapping):
        raise TypeError("expected_failures must be a mapping {claim id: reason}")
    out = {}
    for token, reason in expected_failures.items():
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"expected failure {token!r} needs a non-empty reason")
        try:
            matched = select_claims(available, [str(token)])
        except ValueError as exc:
            raise ValueError(f"expected failure: {exc}") from None
        for cid in matched:
            out[cid] = reason.strip()
    return out


def missing_capabilities(claim, caps: frozenset) -> tuple[str, ...]:
    """The capabilities ``claim`` requires that ``caps`` lacks, sorted."""
    return tuple(sorted(set(claim.requires) - set(caps)))


def not_applicable_reason(missing: tuple[str, ...], name: str, caps: frozenset) -> str:
    """Why a claim is NOT APPLICABLE to the encoder ``name`` declaring ``caps``."""
    declared = ", ".join(sorted(caps)) or "nothing"
    return f"needs {', '.join(missing)}, which {name} does not declare (it declares {declared})"


def _claim_line(result, claim, expected: str | None, n_ran: int) -> ClaimAudit:
    """Turn a harness ClaimResult into a ClaimAudit (expectations applied)."""
    v = result.verdict
    line = ClaimAudit(id=claim.id, theorem=claim.theorem, title=claim.title, outcome=result.outcome,
                      verdict_outcome=result.outcome, requires=tuple(sorted(claim.requires)), expected=expected,
                      error=result.error, control_outcome=result.control_outcome,
                      p_raw=result.p_raw, p_adjusted=result.p_adjusted,
                      seconds=result.seconds + result.control_seconds)
    if v is not None:
        line.statistic_name, line.statistic = v.statistic_name, float(v.statistic)
        line.interval = (float(v.interval[0]), float(v.interval[1]))
        line.threshold, line.n = float(v.threshold), int(v.n)
    raw = result.outcome
    if not getattr(result, "decided", True) and raw != "ERROR" and result.control_outcome != "ERROR":
        # the profile stops before the claim's regime: reported, not decided (like a skip)
        line.outcome = NOT_APPLICABLE
        line.reason = f"{result.reason} (its verdict there: {v.outcome if v is not None else '-'})"
        return line
    if raw == "ERROR":
        first = (result.error or "error").splitlines()[0]
        line.reason = first if expected is None else f"{first} (expected to fail: {expected}; an error is never " \
                                                     "the expected failure)"
    elif raw == "PASS":
        if expected is not None:
            line.outcome = "XPASS"
            line.reason = f"expected to fail ({expected}) but PASSES: the expectation is stale, remove it"
    else:  # FAIL or INCONCLUSIVE
        if raw == "INCONCLUSIVE" and v is not None and v.outcome == "PASS":
            why = (f"PASSES at its own α (p = {fmt(result.p_raw)}) but not after Holm across the {n_ran} claims "
                   f"run (p̃ = {fmt(result.p_adjusted)} > α = {claim.alpha:g})")
        elif raw == "INCONCLUSIVE":
            why = f"the interval straddles the threshold {fmt(line.threshold)}: too little evidence either way"
        else:
            why = f"the interval excludes what the claim needs (threshold {fmt(line.threshold)})"
        if expected is not None:
            line.outcome = "XFAIL"
            line.reason = f"expected: {expected} ({raw}: {why})"
        else:
            line.reason = why
    if result.controls_run and result.control_outcome not in ("FAIL",):
        extra = f"negative control gave {result.control_outcome}; it must FAIL (the claim is broken)"
        line.reason = f"{line.reason}; {extra}" if line.reason else extra
    return line


def check_encoder(encoder, *, profile: str = AUDIT_PROFILE, claims=None, seed: int = 0,
                  expected_failures: Mapping[str, str] | None = None, device: str = "cpu",
                  dtype="float64", executor=None, package=DEFAULT_PACKAGE, controls: bool = False,
                  cache=None, progress: bool = False, validate: bool = True) -> AuditResult:
    """Run every applicable claim against an encoder.

    Parameters
    ----------
    encoder : object or str
        The encoder (see :func:`validate_encoder` for the interface), or a spec for
        :func:`load_encoder` (``"fista"``, ``"pkg.mod:factory"``, ``"path/file.py:factory"``).
    profile : {"quick", "ci", "paper"}
        Claim sizes (default quick: about a minute for every claim on a CPU core).
    claims : None, str, iterable of str, or iterable/mapping of Claim
        None: every claim of ``package``; claim ids or theorem ids (a comma-separated string or
        an iterable; a theorem id selects its claims); or claim instances (e.g. from
        :func:`udl.engine.discovery.discover` of another package).
    seed : int
        Root seed (instance seeds follow :func:`udl.engine.cells.instance_seeds`).
    expected_failures : mapping, optional
        ``{claim id or theorem id: reason}``: such a claim is XFAIL when it does not hold and
        XPASS (not ok) when it PASSES. Unknown ids raise ValueError.
    device, dtype : where the claims compute (dtype a torch dtype or "float32"/"float64").
    executor : optional :mod:`udl.engine.executors` executor (default serial); the caller closes it.
    package : claims package for ``claims`` given as ids (default ``"claims"``).
    controls : bool
        Also run every applicable claim's negative control (False by default: the controls
        test the claims, not the encoder). A control that does not FAIL makes the audit not ok.
    cache : optional :class:`udl.engine.cache.CellCache` or directory of finished cells.
    progress : show the run's progress bar on stderr (when it is a TTY).
    validate : make the interface smoke call first (:func:`validate_encoder`).

    Returns
    -------
    AuditResult

    Raises
    ------
    EncoderSpecError, EncoderInterfaceError
        A bad spec or an encoder that does not meet the interface (before any claim runs).
    ValueError
        Unknown profile, claim id, expected-failure id, dtype or seed.
    """
    start = time.perf_counter()
    if isinstance(encoder, str):
        encoder = load_encoder(encoder)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r} (allowed: {', '.join(PROFILES)})")
    dtype = as_dtype(dtype)
    if validate:
        caps = validate_encoder(encoder, device=device, dtype=dtype)
    else:
        caps = frozenset(getattr(encoder, "capabilities", frozenset()))
    chosen, available = choose_claims(claims, package)
    expected = expectations(expected_failures, available)
    name = encoder_name(encoder)
    applicable = {cid: c for cid, c in chosen.items() if not missing_capabilities(c, caps)}
    run = None
    if applicable:
        ctx = Context(device=device, dtype=dtype, encoder=encoder)
        run = run_claims(applicable, profile, seed, ctx, executor=executor, controls=controls,
                         progress=progress, cache=cache)
    elif isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    lines = {}
    for cid, claim in chosen.items():
        missing = missing_capabilities(claim, caps)
        if missing:
            lines[cid] = ClaimAudit(id=cid, theorem=claim.theorem, title=claim.title, outcome=NOT_APPLICABLE,
                                    reason=not_applicable_reason(missing, name, caps),
                                    requires=tuple(sorted(claim.requires)), missing=missing,
                                    expected=expected.get(cid))
        else:
            lines[cid] = _claim_line(run.claims[cid], claim, expected.get(cid), len(applicable))
    return AuditResult(encoder=encoder, name=name, capabilities=caps, profile=profile, seed=int(seed),
                       device=str(device), dtype=str(dtype).removeprefix("torch."), claims=lines, run=run,
                       controls=controls, wall_seconds=time.perf_counter() - start)
