"""Auditing an encoder: every applicable claim run against it, like scikit-learn's estimator checks.

A researcher who modifies the encoder (FISTA instead of ISTA, a hard threshold, a decaying λ,
learned step sizes) asks which theorems still hold, which now fail and which no longer apply.

- An encoder declares its **capabilities** (``encoder.capabilities``, a set of names from
  :data:`udl.CAPABILITIES`); a claim declares the ones it ``requires``. A claim whose
  requirements are not all declared is **NOT APPLICABLE**, with the missing capability as the
  reason — never FAIL, never silently absent.
- :func:`check_encoder` runs every applicable claim with ``Context(encoder=encoder)`` in one run
  of :func:`udl.engine.harness.run` (so the PASS tests are Holm-adjusted across the claims that ran)
  and returns an :class:`AuditResult`.
- **Expected failures** (``{claim id: reason}``) are reported XFAIL when the claim does not hold
  (FAIL, or INCONCLUSIVE) and **XPASS** when it PASSES. XPASS is strict, as pytest's
  ``xfail_strict`` and scikit-learn's expected-failed checks: it makes the audit not ok, because
  the expectation is stale. An ERROR is never an expected failure.
- :func:`parametrize_with_claims` gives a user's own pytest suite one test per claim
  (not-applicable claims skipped with the reason, expected failures ``xfail(strict=True)``).
- :func:`encoder_matrix` audits several encoders and returns the claims × encoders table with a
  sentence for each cell that differs from the reference ISTA (:data:`EXPLANATIONS`).
- ``udl audit`` is the command-line front end (:func:`configure_cli`, :func:`main_cli`).

Outcomes of an audit (:data:`AUDIT_OUTCOMES`): PASS, FAIL, INCONCLUSIVE, ERROR (the run's
outcome after Holm), NOT APPLICABLE, XFAIL (expected failure that failed) and XPASS (expected
failure that passed: flagged). The audit is ok when none is FAIL, INCONCLUSIVE, ERROR or XPASS
(:data:`UNEXPECTED`).

Encoders are given as objects or as specs (:func:`load_encoder`): a shipped name (``fista``),
``package.module:factory`` (a module on ``sys.path``) or ``path/to/file.py:factory`` (a file
anywhere; its directory is put on ``sys.path`` so that worker processes can import it too). The
factory is called without arguments (a class is instantiated); an attribute that is already an
encoder is used as is.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch

from udl.app._format import fmt_number
from udl.core.encoders import (CAPABILITIES, FISTA, ISTA, HardThresholdISTA, LambdaDecayISTA, NoThreshold,
                       UnscaledThresholdISTA)
from udl.core.learned import LearnedStepISTA

__all__ = [
    "AUDIT_OUTCOMES", "UNEXPECTED", "EXPLANATIONS", "SHIPPED", "EncoderSpecError",
    "EncoderInterfaceError", "ClaimNotHeld", "ClaimErrored", "ClaimAudit", "AuditResult",
    "Declared", "load_encoder", "validate_encoder", "shipped_encoders", "learned_step_encoder",
    "check_encoder", "parametrize_with_claims", "ClaimCheck", "encoder_matrix", "matrix_grid",
    "matrix_markdown", "matrix_notes", "write_matrix", "write_audit", "configure_cli", "main_cli",
]

AUDIT_OUTCOMES = ("PASS", "FAIL", "INCONCLUSIVE", "ERROR", "NOT APPLICABLE", "XFAIL", "XPASS")
#: Outcomes that make an audit not ok (exit status 1 of ``udl audit``).
UNEXPECTED = ("FAIL", "INCONCLUSIVE", "ERROR", "XPASS")
NOT_APPLICABLE = "NOT APPLICABLE"
DEFAULT_PACKAGE = "claims"
DEFAULT_PROFILE = "quick"
PROFILES = ("quick", "ci", "paper")
AUDIT_FORMAT = "udl-audit/1"
AUDIT_FILES = ("audit.json", "audit.csv", "audit.md")
MATRIX_FILES = ("matrix.csv", "cells.csv", "matrix.md")
#: Name of the reference encoder in the matrix; cells are compared against its column.
REFERENCE = "ista"
#: Sizes of the smoke call that :func:`validate_encoder` makes before any claim runs: two
#: instances, m = 4, p = 6, n = 3, T = 3 layers (milliseconds; catches a wrong signature, shape,
#: dtype or a "differentiable" declaration without a gradient before minutes of claims).
_SMOKE = dict(batch=2, m=4, p=6, n=3, T=3, lam=0.1, step=0.1)


class EncoderSpecError(ValueError):
    """An encoder spec (``module:factory``, ``file.py:factory`` or a shipped name) cannot be loaded."""


class EncoderInterfaceError(ValueError):
    """An encoder does not meet the interface (capabilities, signature, output)."""


class ClaimNotHeld(AssertionError):
    """Raised by a :class:`ClaimCheck` when its claim does not PASS (FAIL or INCONCLUSIVE)."""


class ClaimErrored(RuntimeError):
    """Raised by a :class:`ClaimCheck` when its claim's simulation or decision raised (ERROR)."""


# --------------------------------------------------------------------------- encoders
class Declared:
    """An encoder seen through another capability declaration (wrap, don't subclass).

    ``Declared(UnscaledThresholdISTA(), ISTA.capabilities)`` is the slip "threshold λ instead of
    αλ" as its author believes it to be: an ISTA. Calls, ``iterates`` and attributes go to the
    wrapped encoder; only ``capabilities`` (and optionally ``name``) differ.
    """

    def __init__(self, encoder, capabilities: Iterable[str], name: str | None = None):
        self.encoder = encoder
        self.capabilities = frozenset(capabilities)
        self.name = name if name is not None else getattr(encoder, "name", type(encoder).__name__)

    def __call__(self, X, D, **kwargs):
        return self.encoder(X, D, **kwargs)

    def iterates(self, X, D, **kwargs):
        if hasattr(self.encoder, "iterates"):
            return self.encoder.iterates(X, D, **kwargs)
        return iter(self.encoder(X, D, return_path=True, **kwargs)[1:])

    def __getattr__(self, attr):
        if attr == "encoder":  # not set yet (during unpickling): never recurse
            raise AttributeError(attr)
        return getattr(self.encoder, attr)

    def __repr__(self) -> str:
        return f"Declared({self.encoder!r}, capabilities={sorted(self.capabilities)}, name={self.name!r})"


def learned_step_encoder(*, layers: int = 10, n_steps: int = 100, seed: int = 0) -> LearnedStepISTA:
    """The shipped learned-step encoder of the matrix: :class:`LearnedStepISTA` fitted to Z*.

    ``layers`` learned layers (steps and thresholds), fitted by :meth:`LearnedStepISTA.learn`
    to the true codes of 4 seeded instances (m = 50, p = 100, s = 5, n = 50 at D = D*, λ = α =
    0.2: the sizes of claims II.1a–c), float64, ``n_steps`` Adam steps. Deterministic.
    """
    from udl.core.data import make_instances

    inst = make_instances(50, 100, 5, 50, batch=4, init_scale=0.0, seed=seed, dtype=torch.float64)
    return LearnedStepISTA.learn(inst.X, inst.D_star, lam=0.2, step=0.2, layers=layers, target=inst.Z_star,
                                 n_steps=n_steps)


#: Shipped encoders by name (factories called without arguments). ``learned-step`` is
#: :func:`learned_step_encoder` (fitted on first use, about a second).
SHIPPED: dict[str, Callable[[], Any]] = {
    "ista": ISTA,
    "fista": FISTA,
    "hard-threshold": HardThresholdISTA,
    "lambda-decay": LambdaDecayISTA,
    "learned-step": learned_step_encoder,
    "no-threshold": NoThreshold,
    "unscaled-threshold": UnscaledThresholdISTA,
}
#: The negative-control encoders audited in the matrix as their author would declare them: as
#: the reference ISTA (the slip is invisible to a capability declaration). Honestly declared,
#: most claims are NOT APPLICABLE to them and the matrix would show nothing of the slip.
CONTROLS_DECLARED_AS_REFERENCE = ("no-threshold", "unscaled-threshold")


def shipped_encoders(*, controls_as_reference: bool = True) -> dict[str, Any]:
    """The encoders of the matrix, by name: ista (reference), fista, hard-threshold, lambda-decay,
    learned-step, no-threshold, unscaled-threshold.

    Parameters
    ----------
    controls_as_reference : bool
        Wrap the two negative controls in :class:`Declared` with ISTA's capabilities (default),
        so that every claim runs against them; False keeps their own (honest) declarations.
    """
    encoders = {name: factory() for name, factory in SHIPPED.items()}
    if controls_as_reference:
        for name in CONTROLS_DECLARED_AS_REFERENCE:
            encoders[name] = Declared(encoders[name], ISTA.capabilities, name=name)
    return encoders


def _instantiate(obj, spec: str):
    """The encoder behind a spec's attribute: call factories and classes, keep encoder objects."""
    is_encoder = not isinstance(obj, type) and hasattr(obj, "capabilities") and callable(obj)
    if is_encoder:
        return obj
    if not callable(obj):
        raise EncoderSpecError(f"encoder spec {spec!r}: {type(obj).__name__} object is neither a factory nor "
                               "an encoder")
    try:
        return obj()
    except Exception as exc:
        raise EncoderSpecError(f"encoder spec {spec!r}: calling the factory raised "
                               f"{type(exc).__name__}: {exc}") from exc


def _load_file_module(path: Path, spec: str):
    """Import a ``.py`` file as the module named after it, its directory put on ``sys.path``."""
    if not path.is_file():
        raise EncoderSpecError(f"encoder spec {spec!r}: no such file {str(path)!r}")
    name = path.stem
    if not name.isidentifier():
        raise EncoderSpecError(f"encoder spec {spec!r}: {path.name!r} is not importable (the file name "
                               "must be a Python identifier)")
    resolved = path.resolve()
    loaded = sys.modules.get(name)
    if loaded is not None:
        file = getattr(loaded, "__file__", None)
        if file is None or Path(file).resolve() != resolved:
            raise EncoderSpecError(f"encoder spec {spec!r}: a different module named {name!r} is already "
                                   f"imported ({file}); rename the file")
        return loaded
    directory = str(resolved.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        raise EncoderSpecError(f"encoder spec {spec!r}: importing {str(path)!r} raised "
                               f"{type(exc).__name__}: {exc}") from exc
    if Path(module.__file__).resolve() != resolved:
        raise EncoderSpecError(f"encoder spec {spec!r}: module {name!r} resolves to {module.__file__}, "
                               f"not {str(path)!r}; rename the file")
    return module


def load_encoder(spec: str):
    """Load an encoder from a spec.

    Parameters
    ----------
    spec : str
        A shipped name (``ista``, ``fista``, ``hard-threshold``, ``lambda-decay``,
        ``learned-step``, ``no-threshold``, ``unscaled-threshold``); ``package.module:attr``
        (a module on ``sys.path``; ``attr`` may be dotted); or ``path/to/file.py:attr`` (a file
        anywhere: its directory is put on ``sys.path`` and it is imported under its file name,
        so that worker processes can unpickle its classes). ``attr`` is a factory called without
        arguments, a class (instantiated), or an encoder object.

    Returns
    -------
    object
        The encoder.

    Raises
    ------
    EncoderSpecError
        Bad syntax, missing module/file/attribute, or a factory that raised; the message names
        the spec.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise EncoderSpecError(f"encoder spec {spec!r} is empty (expected MODULE:FACTORY, FILE.py:FACTORY "
                               f"or one of {', '.join(SHIPPED)})")
    spec = spec.strip()
    if ":" not in spec:
        if spec in SHIPPED:
            return SHIPPED[spec]()
        raise EncoderSpecError(f"encoder spec {spec!r}: expected MODULE:FACTORY, FILE.py:FACTORY or a shipped "
                               f"name ({', '.join(SHIPPED)})")
    where, _, attr = spec.rpartition(":")
    if not where or not attr or not all(part.isidentifier() for part in attr.split(".")):
        raise EncoderSpecError(f"encoder spec {spec!r}: expected MODULE:FACTORY or FILE.py:FACTORY "
                               "(FACTORY a Python name)")
    if where.endswith(".py") or "/" in where or "\\" in where:
        module = _load_file_module(Path(where), spec)
    else:
        try:
            module = importlib.import_module(where)
        except Exception as exc:
            raise EncoderSpecError(f"encoder spec {spec!r}: cannot import module {where!r}: "
                                   f"{type(exc).__name__}: {exc}") from exc
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise EncoderSpecError(f"encoder spec {spec!r}: {where!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return _instantiate(obj, spec)


def encoder_name(encoder) -> str:
    """A short display name: the encoder's ``name`` attribute, else its class name."""
    name = getattr(encoder, "name", None)
    return name if isinstance(name, str) and name else type(encoder).__name__


def validate_encoder(encoder, *, device: str = "cpu", dtype: torch.dtype = torch.float64) -> frozenset:
    """Check an encoder against the interface; return its declared capabilities.

    The encoder must declare ``capabilities`` (a set of names from :data:`udl.CAPABILITIES`)
    and map ``(X (B, m, n), D (B, m, p), lam=, step=, T=)`` to codes ``(B, p, n)`` of X's dtype,
    finite; when it declares "differentiable", the codes must carry a gradient to D. This is one
    smoke call on a tiny problem (:data:`_SMOKE`), made before any claim runs.

    Raises
    ------
    EncoderInterfaceError
        The first thing that is wrong, in one line naming the encoder.
    """
    name = encoder_name(encoder)
    if not callable(encoder):
        raise EncoderInterfaceError(f"encoder {name!r} is not callable as encoder(X, D, lam=, step=, T=)")
    caps = getattr(encoder, "capabilities", None)
    if caps is None:
        raise EncoderInterfaceError(f"encoder {name!r} declares no capabilities: give it a `capabilities` "
                                    f"frozenset (possibly empty) of names from {sorted(CAPABILITIES)}")
    if isinstance(caps, str) or not isinstance(caps, (set, frozenset, tuple, list)) \
            or not all(isinstance(c, str) for c in caps):
        raise EncoderInterfaceError(f"encoder {name!r}: capabilities must be a set of strings, got {caps!r}")
    unknown = sorted(set(caps) - set(CAPABILITIES))
    if unknown:
        raise EncoderInterfaceError(f"encoder {name!r} declares unknown capabilities {unknown} "
                                    f"(known: {', '.join(sorted(CAPABILITIES))})")
    caps = frozenset(caps)
    s = _SMOKE
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(s["batch"], s["m"], s["n"], generator=gen, dtype=torch.float64).to(device, dtype)
    D = torch.randn(s["batch"], s["m"], s["p"], generator=gen, dtype=torch.float64)
    D = (D / torch.linalg.vector_norm(D, dim=-2, keepdim=True)).to(device, dtype)
    differentiable = "differentiable" in caps
    D_in = D.clone().requires_grad_(differentiable)
    try:
        with torch.enable_grad():
            Z = encoder(X, D_in, lam=s["lam"], step=s["step"], T=s["T"])
    except Exception as exc:
        raise EncoderInterfaceError(f"encoder {name!r} failed on a {s['m']}×{s['p']} smoke problem: "
                                    f"{type(exc).__name__}: {exc}") from exc
    expected = (s["batch"], s["p"], s["n"])
    if not isinstance(Z, torch.Tensor) or tuple(Z.shape) != expected:
        got = tuple(Z.shape) if isinstance(Z, torch.Tensor) else type(Z).__name__
        raise EncoderInterfaceError(f"encoder {name!r} returned {got} for X {tuple(X.shape)}, D {tuple(D.shape)}; "
                                    f"expected codes of shape {expected}")
    if Z.dtype != X.dtype:
        raise EncoderInterfaceError(f"encoder {name!r} returned dtype {Z.dtype} for inputs of dtype {X.dtype}")
    if not bool(torch.isfinite(Z).all()):
        raise EncoderInterfaceError(f"encoder {name!r} returned non-finite codes on the smoke problem")
    if differentiable and not Z.requires_grad:
        raise EncoderInterfaceError(f"encoder {name!r} declares 'differentiable' but its codes carry no gradient "
                                    "to D (computed under no_grad or detached?)")
    return caps


# --------------------------------------------------------------------------- results
def _fmt(value) -> str:
    return fmt_number(value, plain=True)


@dataclass
class ClaimAudit:
    """One claim's line of an audit.

    ``outcome`` is one of :data:`AUDIT_OUTCOMES`; ``verdict_outcome`` the run's outcome before
    expectations were applied (None when not applicable). ``statistic``, ``interval``,
    ``threshold``, ``n`` come from the claim's verdict (None when it has none). ``reason`` says
    why the outcome is what it is (missing capability, error, expectation, Holm downgrade).
    """

    id: str
    theorem: str
    title: str
    outcome: str
    reason: str = ""
    verdict_outcome: str | None = None
    statistic_name: str | None = None
    statistic: float | None = None
    interval: tuple[float, float] | None = None
    threshold: float | None = None
    n: int | None = None
    p_raw: float | None = None
    p_adjusted: float | None = None
    requires: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    expected: str | None = None
    error: str | None = None
    control_outcome: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        from udl.engine.stats import _builtin

        return _builtin({k: getattr(self, k) for k in self.__dataclass_fields__})

    def describe(self) -> str:
        """``statistic_name = value [lo, hi]`` (or ``-``)."""
        if self.statistic is None:
            return "-"
        lo, hi = self.interval if self.interval is not None else (None, None)
        return f"{self.statistic_name} = {_fmt(self.statistic)} [{_fmt(lo)}, {_fmt(hi)}]"


@dataclass
class AuditResult:
    """The result of :func:`check_encoder`: one :class:`ClaimAudit` per claim, and the run.

    Attributes
    ----------
    encoder : the encoder audited.  name : its display name.  capabilities : what it declares.
    profile, seed, device, dtype : the settings.  claims : ``{id: ClaimAudit}`` in id order.
    run : the :class:`udl.engine.harness.RunResult` of the applicable claims (None when none applied).
    controls : whether the claims' negative controls ran too.
    """

    encoder: Any
    name: str
    capabilities: frozenset
    profile: str
    seed: int
    device: str
    dtype: str
    claims: dict[str, ClaimAudit]
    run: Any = None
    controls: bool = False
    wall_seconds: float = 0.0

    # ------------------------------------------------------------------ summaries
    def outcomes(self) -> dict[str, str]:
        """``{claim id: outcome}``."""
        return {cid: c.outcome for cid, c in self.claims.items()}

    @property
    def counts(self) -> dict[str, int]:
        """claims, ran, not_applicable, expected_to_fail, passed, failed, xfail, xpass,
        inconclusive, error (``passed``/``failed`` exclude XPASS/XFAIL)."""
        outs = [c.outcome for c in self.claims.values()]
        ran = [c for c in self.claims.values() if c.outcome != NOT_APPLICABLE]
        return {
            "claims": len(outs),
            "ran": len(ran),
            "not_applicable": outs.count(NOT_APPLICABLE),
            "expected_to_fail": sum(c.expected is not None for c in ran),
            "passed": outs.count("PASS"),
            "failed": outs.count("FAIL"),
            "xfail": outs.count("XFAIL"),
            "xpass": outs.count("XPASS"),
            "inconclusive": outs.count("INCONCLUSIVE"),
            "error": outs.count("ERROR"),
        }

    @property
    def control_problems(self) -> list[str]:
        """Claims whose negative control (when run) did not FAIL: the claim itself is broken."""
        if not self.controls:
            return []
        return [cid for cid, c in self.claims.items()
                if c.outcome != NOT_APPLICABLE and c.control_outcome not in ("FAIL", None)]

    @property
    def unexpected(self) -> list[str]:
        """Ids of the claims with an outcome in :data:`UNEXPECTED`."""
        return [cid for cid, c in self.claims.items() if c.outcome in UNEXPECTED]

    @property
    def ok(self) -> bool:
        """True when nothing unexpected happened: no FAIL, INCONCLUSIVE, ERROR or XPASS (and,
        with controls, every control FAILED)."""
        return not self.unexpected and not self.control_problems

    def summary(self) -> str:
        """The summary line: how many claims ran, were not applicable, expected to fail, passed, failed."""
        k = self.counts
        text = (f"audit of {self.name}: {k['claims']} claims: {k['ran']} ran, {k['not_applicable']} not applicable, "
                f"{k['expected_to_fail']} expected to fail; {k['passed']} passed, {k['failed']} failed, "
                f"{k['xfail']} XFAIL, {k['xpass']} XPASS, {k['inconclusive']} inconclusive, {k['error']} errors "
                f"(profile {self.profile}, seed {self.seed}, {self.device}, {self.dtype}; Holm across the "
                f"{k['ran']} claims run)")
        if self.ok:
            return text + " — OK"
        bad = [f"{cid} {self.claims[cid].outcome}" for cid in self.unexpected]
        bad += [f"{cid} control {self.claims[cid].control_outcome}" for cid in self.control_problems]
        return text + " — NOT OK: " + ", ".join(bad)

    def to_frame(self) -> pd.DataFrame:
        """One row per claim (tidy): encoder, claim, outcome, statistic, interval, reason, …"""
        import pandas as pd

        rows = []
        for c in self.claims.values():
            lo, hi = c.interval if c.interval is not None else (None, None)
            rows.append({"encoder": self.name, "claim": c.id, "theorem": c.theorem, "title": c.title,
                         "outcome": c.outcome, "verdict_outcome": c.verdict_outcome,
                         "statistic_name": c.statistic_name, "statistic": c.statistic, "lower": lo, "upper": hi,
                         "threshold": c.threshold, "n": c.n, "p_raw": c.p_raw, "p_adjusted": c.p_adjusted,
                         "requires": " ".join(c.requires), "missing": " ".join(c.missing),
                         "declared": " ".join(sorted(self.capabilities)),
                         "expected": c.expected, "control_outcome": c.control_outcome,
                         "reason": c.reason, "seconds": c.seconds})
        return pd.DataFrame(rows)

    def format_table(self) -> str:
        """The table printed by ``udl audit``: claim, outcome, statistic, interval, n, time, reason."""
        header = ["claim", "outcome", "statistic", "interval", "n", "time", "reason"]
        rows = [header]
        for c in self.claims.values():
            if c.statistic is None:
                stat, interval = "-", "-"
            else:
                stat = f"{c.statistic_name} = {_fmt(c.statistic)}"
                lo, hi = c.interval
                interval = f"[{_fmt(lo)}, {_fmt(hi)}]"
            outcome = c.outcome + (" (!)" if c.outcome in UNEXPECTED else "")
            seconds = "-" if c.outcome == NOT_APPLICABLE else f"{c.seconds:.1f}s"
            rows.append([c.id, outcome, stat, interval, "-" if c.n is None else str(c.n), seconds, c.reason])
        widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
        return "\n".join("  ".join([cell.ljust(w) for cell, w in zip(r[:-1], widths)] + [r[-1]]).rstrip()
                         for r in rows)

    def to_dict(self) -> dict:
        """JSON-able record (``audit.json``)."""
        from udl.engine.stats import _builtin

        return _builtin({
            "format": AUDIT_FORMAT,
            "encoder": {"name": self.name, "repr": repr(self.encoder), "class": _qualname(self.encoder),
                        "capabilities": sorted(self.capabilities)},
            "settings": {"profile": self.profile, "seed": self.seed, "device": self.device, "dtype": self.dtype,
                         "controls": self.controls,
                         "multiple_testing": "Holm step-down across the PASS tests of the claims that ran"},
            "summary": {"ok": self.ok, **self.counts, "unexpected": self.unexpected,
                        "control_problems": self.control_problems},
            "claims": {cid: c.to_dict() for cid, c in self.claims.items()},
            "wall_seconds": self.wall_seconds,
        })

    def to_markdown(self) -> str:
        """``audit.md``: the summary line and the table."""
        lines = [f"# udl audit: {self.name}", "", f"Encoder: `{self.encoder!r}`  ",
                 f"Capabilities: {', '.join(sorted(self.capabilities)) or 'none'}", "", self.summary(), "",
                 "| claim | outcome | statistic | interval | n | reason |", "|---|---|---|---|---|---|"]
        for c in self.claims.values():
            lo, hi = c.interval if c.interval is not None else (None, None)
            stat = "-" if c.statistic is None else f"{c.statistic_name} = {_fmt(c.statistic)}"
            interval = "-" if c.interval is None else f"[{_fmt(lo)}, {_fmt(hi)}]"
            lines.append(f"| {c.id} | {c.outcome} | {_md(stat)} | {interval} | {'-' if c.n is None else c.n} | "
                         f"{_md(c.reason)} |")
        return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def _qualname(obj) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


# --------------------------------------------------------------------------- choosing claims
def _discover(package):
    from udl.engine import harness

    return harness.discover(package)


def _choose_claims(claims, package) -> tuple[dict, dict]:
    """(chosen ``{id: claim}``, available ``{id: claim}`` for expectations) from the ``claims`` argument."""
    from udl.engine import harness

    if claims is not None and not isinstance(claims, str):
        items = list(claims.values()) if isinstance(claims, Mapping) else list(claims)
        if items and all(isinstance(c, harness.Claim) for c in items):
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
    available = _discover(package)
    if tokens is None:
        return available, available
    if not tokens or any(not t.strip() for t in tokens):
        raise ValueError(f"empty claim id in {claims!r}")
    return harness.select_claims(available, tokens), available


def _expectations(expected_failures, available: Mapping) -> dict[str, str]:
    """``{claim id: reason}`` from ``{id or theorem id: reason}``; unknown ids raise ValueError."""
    from udl.engine import harness

    if not expected_failures:
        return {}
    if not isinstance(expected_failures, Mapping):
        raise TypeError("expected_failures must be a mapping {claim id: reason}")
    out = {}
    for token, reason in expected_failures.items():
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"expected failure {token!r} needs a non-empty reason")
        try:
            matched = harness.select_claims(available, [str(token)])
        except ValueError as exc:
            raise ValueError(f"expected failure: {exc}") from None
        for cid in matched:
            out[cid] = reason.strip()
    return out


def _missing(claim, caps: frozenset) -> tuple[str, ...]:
    return tuple(sorted(set(claim.requires) - set(caps)))


def _not_applicable_reason(missing: tuple[str, ...], name: str, caps: frozenset) -> str:
    declared = ", ".join(sorted(caps)) or "nothing"
    return f"needs {', '.join(missing)}, which {name} does not declare (it declares {declared})"


def _as_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype.removeprefix("torch."), None), torch.dtype):
        return getattr(torch, dtype.removeprefix("torch."))
    raise ValueError(f"unknown dtype {dtype!r} (allowed: float32, float64)")


# --------------------------------------------------------------------------- the audit
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
        line.interval, line.threshold, line.n = (float(v.interval[0]), float(v.interval[1])), float(v.threshold), int(v.n)
    raw = result.outcome
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
            why = (f"PASSES at its own α (p = {_fmt(result.p_raw)}) but not after Holm across the {n_ran} claims "
                   f"run (p̃ = {_fmt(result.p_adjusted)} > α = {claim.alpha:g})")
        elif raw == "INCONCLUSIVE":
            why = f"the interval straddles the threshold {_fmt(line.threshold)}: too little evidence either way"
        else:
            why = f"the interval excludes what the claim needs (threshold {_fmt(line.threshold)})"
        if expected is not None:
            line.outcome = "XFAIL"
            line.reason = f"expected: {expected} ({raw}: {why})"
        else:
            line.reason = why
    if result.controls_run and result.control_outcome not in ("FAIL",):
        extra = f"negative control gave {result.control_outcome}; it must FAIL (the claim is broken)"
        line.reason = f"{line.reason}; {extra}" if line.reason else extra
    return line


def check_encoder(encoder, *, profile: str = DEFAULT_PROFILE, claims=None, seed: int = 0,
                  expected_failures: Mapping[str, str] | None = None, device: str = "cpu",
                  dtype=torch.float64, executor=None, package=DEFAULT_PACKAGE, controls: bool = False,
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
        None: every claim of ``package``; ids or theorem ids (``"II.1b,II.3"``); or claim
        instances (e.g. from :func:`udl.engine.harness.discover` of another package).
    seed : int
        Root seed (instance seeds follow :func:`udl.engine.harness.instance_seeds`).
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
    from udl.engine import harness

    start = time.perf_counter()
    if isinstance(encoder, str):
        encoder = load_encoder(encoder)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r} (allowed: {', '.join(PROFILES)})")
    dtype = _as_dtype(dtype)
    if validate:
        caps = validate_encoder(encoder, device=device, dtype=dtype)
    else:
        caps = frozenset(getattr(encoder, "capabilities", frozenset()))
    chosen, available = _choose_claims(claims, package)
    expected = _expectations(expected_failures, available)
    name = encoder_name(encoder)
    applicable = {cid: c for cid, c in chosen.items() if not _missing(c, caps)}
    run = None
    if applicable:
        ctx = harness.Context(device=device, dtype=dtype, encoder=encoder)
        run = harness.run(applicable, profile, seed, ctx, executor=executor, controls=controls,
                          progress=progress, cache=cache)
    elif isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    lines = {}
    for cid, claim in chosen.items():
        missing = _missing(claim, caps)
        if missing:
            lines[cid] = ClaimAudit(id=cid, theorem=claim.theorem, title=claim.title, outcome=NOT_APPLICABLE,
                                    reason=_not_applicable_reason(missing, name, caps),
                                    requires=tuple(sorted(claim.requires)), missing=missing,
                                    expected=expected.get(cid))
        else:
            lines[cid] = _claim_line(run.claims[cid], claim, expected.get(cid), len(applicable))
    return AuditResult(encoder=encoder, name=name, capabilities=caps, profile=profile, seed=int(seed),
                       device=str(device), dtype=str(dtype).removeprefix("torch."), claims=lines, run=run,
                       controls=controls, wall_seconds=time.perf_counter() - start)


# --------------------------------------------------------------------------- pytest
@dataclass
class ClaimCheck:
    """One claim run against one encoder; calling it raises unless the claim PASSES.

    Made by :func:`parametrize_with_claims`. Each check is its own run (decided at the claim's
    own α, as ``udl verify --claims ID``; :func:`check_encoder` Holm-adjusts across claims).
    """

    claim: Any
    encoder: Any
    profile: str = DEFAULT_PROFILE
    seed: int = 0
    device: str = "cpu"
    dtype: Any = torch.float64
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


def parametrize_with_claims(encoder, *, profile: str = DEFAULT_PROFILE, claims=None,
                            expected_failures: Mapping[str, str] | None = None, seed: int = 0,
                            device: str = "cpu", dtype=torch.float64, package=DEFAULT_PACKAGE):
    """A ``pytest.mark.parametrize`` over ``(claim_id, check)`` for every claim, as scikit-learn's
    ``parametrize_with_checks``::

        from udl import parametrize_with_claims

        @parametrize_with_claims(MyEncoder(), expected_failures={"II.1b": "no λ floor by design"})
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
    dtype = _as_dtype(dtype)
    caps = validate_encoder(encoder, device=device, dtype=dtype)
    chosen, available = _choose_claims(claims, package)
    expected = _expectations(expected_failures, available)
    name = encoder_name(encoder)
    params = []
    for cid, claim in chosen.items():
        check = ClaimCheck(claim, encoder, profile=profile, seed=seed, device=device, dtype=dtype)
        missing = _missing(claim, caps)
        if missing:
            marks = [pytest.mark.skip(reason=f"{cid} NOT APPLICABLE: {_not_applicable_reason(missing, name, caps)}")]
        elif cid in expected:
            marks = [pytest.mark.xfail(reason=expected[cid], strict=True, raises=ClaimNotHeld)]
        else:
            marks = []
        params.append(pytest.param(cid, check, id=cid, marks=marks))
    return pytest.mark.parametrize(("claim_id", "check"), params)


# --------------------------------------------------------------------------- the matrix
def _when(part: str, template: str) -> Callable[[dict], str | None]:
    """A template used only when the verdict's decisive part is ``part`` (its statistic name)."""
    return lambda v: template.format(**v) if part in v["statistic_name"] else None


#: The sentence of a matrix cell that differs from the reference, after "<claim> <OUTCOME> for
#: <encoder>: ". Keyed by (claim id, outcome, encoder name) for the shipped encoders, then by
#: (claim id, outcome) for any encoder; a value is a format string or a callable of the values
#: (returning None when it does not apply). Values: statistic, lower, upper, threshold,
#: statistic_name, reference (the reference's statistic when it measures the same thing, else
#: nan). Anything else gets a generic sentence built from the verdict.
EXPLANATIONS: dict[tuple, str | Callable[[dict], str | None]] = {
    # --- no threshold (Landweber iteration, declared as ISTA): codes ignore λ and are never sparse
    ("II.1b", "FAIL", "no-threshold"):
        "without a threshold the codes converge to the minimum-norm least-squares solution whatever λ is, "
        "so the floor does not depend on λ (log-log slope {statistic:.2g}, needs 1 ± 0.25)",
    ("II.1c", "INCONCLUSIVE", "no-threshold"):
        "without a threshold the floor is the error of least-squares codes, which barely changes with δ "
        "(relative slope {statistic:.2g} [{lower:.2g}, {upper:.2g}] against 0.1)",
    ("II.1d", "FAIL", "no-threshold"):
        "without a threshold no code entry is ever exactly zero, so the support is never recovered "
        "(rate {statistic:.2g}, upper bound {upper:.2g}, needs > 0.9)",
    ("II.2a", "INCONCLUSIVE", "no-threshold"):
        "least-squares codes hardly pull D towards D* (contraction factor {statistic:.3g} "
        "[{lower:.3g}, {upper:.3g}] against 1; the reference contracts at {reference:.2g})",
    ("II.2b", "FAIL", "no-threshold"):
        "without a threshold the codes, and so the g_dec plateau, do not depend on λ (smallest local "
        "log-log slope {statistic:.2g}, needs > 0.1)",
    ("II.3a", "FAIL", "no-threshold"):
        "the codes converge to least-squares codes, not to the lasso solution Ẑ, so the gradients stay "
        "about 100 % away from ĝ ({statistic_name} = {statistic:.2g}, needs < −3)",
    ("II.3c", "FAIL", "no-threshold"):
        "without a threshold the codes ignore λ, so ‖g_dec‖ at D* does not scale with λ (log-log slope "
        "{statistic:.2g}, needs 1 ± 0.25)",
    # --- threshold λ instead of αλ (declared as ISTA): the lasso at λ/α = 5λ
    ("II.1b", "FAIL", "unscaled-threshold"):
        "thresholding at λ instead of αλ solves the lasso at λ/α = 5λ, which zeroes true entries at the "
        "larger λ of the sweep (none is left at λ = 0.4), so the floor saturates near max|z*| instead of "
        "growing ∝ λ (log-log slope "
        "{statistic:.2g}, needs 1 ± 0.25)",
    ("II.1c", "INCONCLUSIVE", "unscaled-threshold"):
        "the five-fold shrinkage (λ instead of αλ) dominates the floor and hides the dictionary term "
        "(relative slope {statistic:.2g} [{lower:.2g}, {upper:.2g}] against 0.1)",
    ("II.1d", "INCONCLUSIVE", "unscaled-threshold"):
        "the threshold λ = 5·αλ zeroes some true entries (recovery rate {statistic:.2g} "
        "[{lower:.2g}, {upper:.2g}] against 0.9; the reference recovers {reference:.2g})",
    ("II.2b", "FAIL", "unscaled-threshold"):
        "the codes are lasso codes at λ/α = 5λ: at the largest λ of the sweep they are all zero, g_dec "
        "vanishes and D never leaves D⁽⁰⁾, so the plateau no longer grows with λ (smallest local log-log "
        "slope {statistic:.2g}, needs > 0.1)",
    ("II.3a", "FAIL", "unscaled-threshold"):
        "the codes converge to the lasso solution at λ/α = 5λ, not at λ, so the gradients do not reach ĝ "
        "({statistic_name} = {statistic:.2g}, needs < −3)",
    ("II.3c", "FAIL", "unscaled-threshold"):
        "the codes are lasso codes at 5λ, which lose true entries at the larger λ: ‖g_dec‖ at D* no longer "
        "scales as λ (log-log slope {statistic:.2g}, needs 1 ± 0.25)",
    ("II.4c", "ERROR", "unscaled-threshold"):
        "the threshold λ = 0.1 instead of αλ = 0.02 zeroes every code of the unit-norm digits (no atom is "
        "used), so the resemblance is 0/0 = NaN and the claim's decision raises; the claim should "
        "report FAIL here",
    # --- any encoder
    ("II.1a", "FAIL"): "the iterates do not settle into a geometric decay once the support is fixed "
                       "(fitted per-layer factor {statistic:.3g}, upper bound {upper:.3g}, needs < 1)",
    ("II.1b", "FAIL"): "the converged code error does not scale linearly with λ (log-log slope {statistic:.2g}, "
                       "needs 1 ± 0.25): the floor is not the λ term of the lasso bias",
    ("II.1c", "FAIL"): "the converged code error does not grow with the dictionary error δ (relative "
                       "slope {statistic:.2g}, needs > 0.1)",
    ("II.1d", "FAIL"): "the support is not recovered for the vast majority of examples (rate {statistic:.2g}, "
                       "upper bound {upper:.2g}, needs > 0.9)",
    ("II.1e", "FAIL"): "λ-decay and hard thresholding no longer halve this encoder's floor ({statistic_name} = "
                       "{statistic:.2g}): its own fixed-λ floor is not dominated by the λ term",
    ("II.2a", "FAIL"): "g_dec with these codes no longer contracts the dictionary error (factor "
                       "{statistic:.3g}, needs < 1)",
    ("II.2b", "FAIL"): "the g_dec plateau no longer grows with λ ({statistic_name} = {statistic:.2g}, needs > 0.1)",
    ("II.3a", "FAIL"): "the gradients do not converge to the lasso gradient ĝ ({statistic_name} = "
                       "{statistic:.2g}): the codes do not converge to the lasso solution at this λ",
    ("II.3b", "FAIL"): _when("ae-lasso ≈ dec",
                             "g_ae-lasso is no longer ≈ g_dec (mean log(‖g_ae-lasso − g*‖/‖g_dec − g*‖) = "
                             "{statistic:.2g}, needs ≈ 0): Danskin's equivalence needs Z_T to be the lasso minimiser "
                             "at the loss's λ, which these codes are not"),
    ("II.3c", "FAIL"): "the gradient norms at D* no longer scale as λ (dec, ae-lasso) and λ² (ae-ls) "
                       "({statistic_name} = {statistic:.2g})",
    ("II.3d", "FAIL"): _when("e_ae-ls / e_dec",
                             "learning with g_ae-ls no longer ends closer to D* than with g_dec (mean "
                             "log(e_ae-ls/e_dec) = {statistic:.2g}, needs < 0): the ordering rests on g_dec's O(λ) "
                             "bias from a fixed soft threshold, which decaying or learned thresholds shrink"),
    ("II.4a", "FAIL"): "the stationary-dictionary identities fail on this encoder's codes "
                       "({statistic_name} = {statistic:.2g})",
    ("II.4b", "INCONCLUSIVE"): _when("[trend]",
                                     "the deviation from X G⁻¹Z̃ᵀ no longer shrinks between the last two "
                                     "checkpoints on most instances (rate {statistic:.2g} [{lower:.2g}, {upper:.2g}] "
                                     "against 1/2): g_dec training with these codes has not settled by the last "
                                     "checkpoint"),
    ("II.4c", "FAIL"): "the β-reconstruction no longer picks same-label training digits, or the top "
                       "contributors no longer resemble the atoms ({statistic_name} = {statistic:.2g})",
}


def _explain(key: tuple, values: dict) -> str | None:
    entry = EXPLANATIONS.get(key)
    if entry is None:
        return None
    try:
        return entry(values) if callable(entry) else entry.format(**values)
    except (KeyError, ValueError, IndexError, TypeError):
        return None


def _not_applicable_text(missing: Iterable[str], name: str, declared: Iterable[str]) -> str:
    needs = " and ".join(f"{m} [{CAPABILITIES.get(m, 'a capability')}]" for m in missing)
    declared = ", ".join(sorted(declared)) or "nothing"
    return f"needs {needs}; {name} declares {declared}"


def _sentence(row: Mapping, reference: Mapping | None) -> str:
    """The sentence of one matrix cell that differs from the reference."""
    import pandas as pd

    head = f"{row['claim']} {row['outcome']} for {row['encoder']}"

    def number(value):
        return float(value) if value is not None and not pd.isna(value) else math.nan

    if row["outcome"] == NOT_APPLICABLE:
        return f"{head}: " + _not_applicable_text(str(row.get("missing") or "").split(), row["encoder"],
                                                   str(row.get("declared") or "").split()) + "."
    values = {k: number(row.get(k)) for k in ("statistic", "lower", "upper", "threshold")}
    values["statistic_name"] = row.get("statistic_name") or "statistic"
    same_measure = reference is not None and reference.get("statistic_name") == row.get("statistic_name")
    values["reference"] = number(reference.get("statistic")) if same_measure else math.nan
    for key in ((row["claim"], row["outcome"], row["encoder"]), (row["claim"], row["outcome"])):
        text = _explain(key, values)
        if text:
            return f"{head}: {text}."
    if row["outcome"] == "ERROR":
        return f"{head}: {row['reason']}."
    ref_text = f"; the reference has {_fmt(values['reference'])}" if same_measure else ""
    return (f"{head}: {values['statistic_name']} = {_fmt(values['statistic'])} [{_fmt(values['lower'])}, "
            f"{_fmt(values['upper'])}] against the threshold {_fmt(values['threshold'])}{ref_text}"
            + (f" ({row['reason']})" if row["outcome"] == "INCONCLUSIVE" and row.get("reason") else "") + ".")


def matrix_notes(cells) -> list[str]:
    """The sentences of the cells that differ from the reference, one per cell except that an
    encoder's NOT APPLICABLE cells with the same missing capabilities share one sentence."""
    notes = []
    differing = cells[cells["differs"]]
    for encoder in dict.fromkeys(differing["encoder"]):
        mine = differing[differing["encoder"] == encoder]
        na = mine[mine["outcome"] == NOT_APPLICABLE]
        for missing, group in na.groupby("missing", sort=False):
            first = group.iloc[0]
            notes.append(f"{', '.join(group['claim'])} NOT APPLICABLE for {encoder}: "
                         + _not_applicable_text(str(missing).split(), encoder, str(first["declared"]).split()) + ".")
        notes += list(mine.loc[mine["outcome"] != NOT_APPLICABLE, "sentence"])
    return notes


def encoder_matrix(encoders: Mapping[str, Any] | Iterable | None = None, *, profile: str = DEFAULT_PROFILE,
                   claims=None, seed: int = 0, device: str = "cpu", dtype=torch.float64, executor=None,
                   package=DEFAULT_PACKAGE, reference: str = REFERENCE, cache=None, progress: bool = False,
                   on_audit: Callable[[AuditResult], None] | None = None) -> pd.DataFrame:
    """Audit several encoders; return the claims × encoders matrix as a tidy table.

    Parameters
    ----------
    encoders : mapping name → encoder, iterable of encoders/specs, or None
        None: :func:`shipped_encoders` (ista, fista, hard-threshold, lambda-decay, learned-step,
        and the controls no-threshold and unscaled-threshold declared as the reference).
    profile : default quick (the full matrix at ci takes about ten times as long).
    reference : name of the reference column (default ``"ista"``, added when absent).
    on_audit : called with each encoder's :class:`AuditResult` as it finishes (progress).
    claims, seed, device, dtype, executor, package, cache, progress : as :func:`check_encoder`.

    Returns
    -------
    pandas.DataFrame
        One row per (claim, encoder): claim, theorem, title, encoder, outcome, statistic_name,
        statistic, lower, upper, threshold, n, reason, reference_outcome, differs (outcome ≠
        the reference's) and sentence (non-empty exactly where it differs). Rows are in claim
        order, then encoder order. :func:`matrix_grid` pivots it to claims × encoders.
    """
    import pandas as pd

    if encoders is None:
        encoders = shipped_encoders()
    elif not isinstance(encoders, Mapping):
        loaded = [load_encoder(e) if isinstance(e, str) else e for e in encoders]
        encoders = {encoder_name(e): e for e in loaded}
    encoders = dict(encoders)
    if reference not in encoders:
        if reference != REFERENCE:
            raise ValueError(f"reference {reference!r} is not one of the encoders {list(encoders)}")
        encoders = {REFERENCE: ISTA(), **encoders}
    encoders = {reference: encoders[reference], **{k: v for k, v in encoders.items() if k != reference}}
    frames = []
    for name, encoder in encoders.items():
        audit = check_encoder(encoder, profile=profile, claims=claims, seed=seed, device=device, dtype=dtype,
                              executor=executor, package=package, cache=cache, progress=progress)
        frame = audit.to_frame()
        frame["encoder"] = name
        frames.append(frame)
        if on_audit is not None:
            on_audit(audit)
    cells = pd.concat(frames, ignore_index=True)
    ref = cells[cells["encoder"] == reference].set_index("claim")
    cells["reference_outcome"] = cells["claim"].map(ref["outcome"])
    cells["differs"] = (cells["outcome"] != cells["reference_outcome"]) & (cells["encoder"] != reference)
    sentences = []
    for row in cells.to_dict("records"):
        reference_row = ref.loc[row["claim"]].to_dict() if row["claim"] in ref.index else None
        sentences.append(_sentence(row, reference_row) if row["differs"] else "")
    cells["sentence"] = sentences
    order = {cid: i for i, cid in enumerate(dict.fromkeys(cells["claim"]))}
    enc_order = {e: i for i, e in enumerate(encoders)}
    cells = cells.sort_values(by=["claim", "encoder"], key=lambda s: s.map(order if s.name == "claim" else enc_order))
    columns = ["claim", "theorem", "title", "encoder", "outcome", "statistic_name", "statistic", "lower", "upper",
               "threshold", "n", "declared", "missing", "reason", "reference_outcome", "differs", "sentence",
               "seconds"]
    return cells[columns].reset_index(drop=True)


def matrix_grid(cells: pd.DataFrame) -> pd.DataFrame:
    """Claims × encoders table of outcomes from :func:`encoder_matrix`'s tidy table."""
    import pandas as pd

    grid = cells.pivot(index="claim", columns="encoder", values="outcome")
    grid = grid.reindex(index=list(dict.fromkeys(cells["claim"])), columns=list(dict.fromkeys(cells["encoder"])))
    grid.columns.name = None
    return grid


_SHORT = {NOT_APPLICABLE: "n/a", "INCONCLUSIVE": "INCONCL."}


def matrix_markdown(cells: pd.DataFrame, *, profile: str, seed: int, note: str | None = None) -> str:
    """``matrix.md``: the grid (PASS/FAIL/INCONCL./ERROR/n/a) and one sentence per differing cell."""
    grid = matrix_grid(cells)
    titles = cells.drop_duplicates("claim").set_index("claim")["title"]
    encoders = list(grid.columns)
    reference = encoders[0]
    lines = [f"# Claims × encoders (profile {profile}, seed {seed})", "",
             f"Each column is one `udl audit` of that encoder (Holm across its applicable claims); "
             f"`n/a` = not applicable (a required capability is not declared). Reference: {reference}. "
             f"Profile {profile}" + (" (the matrix's default: every claim at the sizes of the test suite; "
                                      "`--profile ci` for the reference report's power)" if profile == "quick" else "")
             + ".", ""]
    if note:
        lines += [note, ""]
    lines.append("| claim | " + " | ".join(encoders) + " | title |")
    lines.append("|---|" + "---|" * len(encoders) + "---|")
    for cid, row in grid.iterrows():
        lines.append(f"| {cid} | " + " | ".join(_SHORT.get(row[e], row[e]) for e in encoders)
                     + f" | {_md(titles[cid])} |")
    notes = matrix_notes(cells)
    lines += ["", f"## Where an encoder differs from {reference}", ""]
    if not notes:
        lines.append("Nowhere: every encoder has the reference's outcome on every claim.")
    lines += [f"- {_md(note)}" for note in notes]
    return "\n".join(lines).rstrip() + "\n"


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _check_plain_target(out_dir, marker: str) -> Path:
    """A target that is new, empty, or an earlier output (holding ``marker``)."""
    target = Path(out_dir)
    if target.exists() or target.is_symlink():
        if not target.is_dir() or target.is_symlink():
            raise ValueError(f"output path {str(target)!r} exists and is not a directory")
        if any(target.iterdir()) and not (target / marker).is_file():
            raise ValueError(f"output directory {str(target)!r} is not empty and holds no {marker}; refusing "
                             "to replace it (choose a new or empty directory, or an earlier output)")
    return target


def write_matrix(cells: pd.DataFrame, out_dir, *, profile: str, seed: int, note: str | None = None) -> Path:
    """Write ``matrix.csv`` (claims × encoders), ``cells.csv`` (tidy) and ``matrix.md`` atomically."""
    target = _check_plain_target(out_dir, "matrix.csv")
    target.absolute().parent.mkdir(parents=True, exist_ok=True)
    staging = target.absolute().parent / f".{target.name}.tmp-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        _write_text(staging / "matrix.csv", matrix_grid(cells).to_csv(index_label="claim", lineterminator="\n"))
        _write_text(staging / "cells.csv", cells.to_csv(index=False, lineterminator="\n"))
        _write_text(staging / "matrix.md", matrix_markdown(cells, profile=profile, seed=seed, note=note))
        if target.exists():
            aside = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(target, aside)
            os.replace(staging, target)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def write_audit(result: AuditResult, out_dir) -> Path:
    """Write an audit directory: the run directory of the claims that ran (``results.json``,
    ``tables/``, readable by :func:`udl.engine.results.load_run`) plus ``audit.json``, ``audit.csv``
    and ``audit.md``."""
    from udl.engine import harness
    from udl.engine import results

    run = result.run
    if run is None:  # nothing applicable: an empty run keeps the directory a valid run directory
        run = harness.RunResult(profile=result.profile, seed=result.seed, device=result.device, dtype=result.dtype,
                                controls=result.controls, claims={}, started="", wall_seconds=0.0)
    target = results.write_run(run, out_dir)
    for file, text in (("audit.json", json.dumps(result.to_dict(), sort_keys=True, indent=2, allow_nan=True,
                                                 ensure_ascii=False) + "\n"),
                       ("audit.csv", result.to_frame().to_csv(index=False, lineterminator="\n")),
                       ("audit.md", result.to_markdown())):
        tmp = target / f".{file}.tmp-{uuid.uuid4().hex[:8]}"
        _write_text(tmp, text)
        os.replace(tmp, target / file)
    return target


# --------------------------------------------------------------------------- command line
EXIT_OK, EXIT_NOT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
CACHE_ENV = "UDL_CACHE_DIR"


def _usage(message: str):
    from udl.app.cli import UsageError

    return UsageError(f"udl audit: error: {message}")


def _seed_arg(text: str) -> int:
    """``--seed``: the same rule as ``udl verify --seed``."""
    from udl.app.cli import _seed

    return _seed(text)


def _expect_arg(text: str) -> tuple[str, str]:
    cid, sep, reason = text.partition("=")
    if not sep or not cid.strip() or not reason.strip():
        raise argparse.ArgumentTypeError(f"invalid expected failure {text!r} (expected ID=reason, e.g. "
                                         "II.1b='hard threshold: no λ floor')")
    return cid.strip(), reason.strip()


def _workers_arg(text: str) -> int:
    """``--workers``: the same rule as ``udl verify --workers``."""
    from udl.app.cli import _workers

    return _workers(text)


def configure_cli(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``udl audit``."""
    parser.epilog = (
        "exit status: 0 nothing unexpected (every claim that ran PASSES, or does not hold as expected: XFAIL; "
        "NOT APPLICABLE claims do not count); 1 some claim FAILS, is INCONCLUSIVE or ERRORS, or an expected "
        "failure PASSES (XPASS is strict: remove the stale expectation); 2 bad input (encoder spec, claim id, "
        "--expect-fail syntax, output directory; nothing computed); 130 interrupted. "
        "--matrix audits the shipped encoders (or the --with-encoders ones) and exits 0 unless a cell is ERROR "
        "(expected FAILs are its point).")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--encoder", metavar="SPEC", default=None,
                        help="the encoder to audit: package.module:factory, path/to/file.py:factory, or a "
                             f"shipped name ({', '.join(SHIPPED)})")
    target.add_argument("--matrix", action="store_true",
                        help="audit the shipped encoders (ista, fista, hard-threshold, lambda-decay, learned-step, "
                             "and the controls no-threshold, unscaled-threshold declared as ista) and write the "
                             "claims x encoders matrix")
    parser.add_argument("--with-encoders", metavar="SPEC", action="append", default=None, dest="matrix_encoders",
                        help="with --matrix: the columns (repeatable; ista is always the reference)")
    parser.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE,
                        help="claim sizes (default quick: about a minute per encoder on a CPU core)")
    parser.add_argument("--claims", metavar="IDS", default=None,
                        help="comma list of claim ids (II.3b) or theorem ids (II.3); default every claim")
    parser.add_argument("--expect-fail", metavar="ID=REASON", type=_expect_arg, action="append", default=[],
                        help="a claim (or theorem) expected to fail, with the reason; repeatable")
    parser.add_argument("--seed", type=_seed_arg, default=0, help="root seed, integer >= 0 (default 0)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="write the results there: a run directory plus audit.json/csv/md (audit), or "
                             "matrix.csv, cells.csv, matrix.md (--matrix); replaced atomically")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64",
                        help="simulation dtype (default float64)")
    parser.add_argument("--claims-package", metavar="PACKAGE", default=DEFAULT_PACKAGE,
                        help="package (dotted name or directory path) to discover claims in (default claims)")
    parser.add_argument("--controls", action="store_true",
                        help="also run the claims' negative controls (each must FAIL)")
    parser.add_argument("--executor", metavar="SPEC", default="serial",
                        help="where cells run: serial (default), processes, dask or tcp://HOST:PORT")
    parser.add_argument("--workers", metavar="N", type=_workers_arg, default=None,
                        help="worker processes for --executor processes or dask")
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument("--no-cache", action="store_true", help="compute every cell, without the cache")
    cache.add_argument("--cache-dir", metavar="DIR", default=None,
                       help=f"cache of finished cells (default ${CACHE_ENV} or .udl-cache)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _check_device(device: str) -> str:
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind != "cuda" or not index.isdigit())):
        raise _usage(f"argument --device: invalid device {device!r} (allowed: cpu, cuda, cuda:N)")
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (index and int(index) >= count):
            raise _usage(f"argument --device: {device!r} is not available here")
    return device


def _load_claims_for_cli(args):
    from udl.engine import harness

    try:
        available = harness.discover(args.claims_package)
    except harness.ClaimDefinitionError as exc:
        raise _usage(f"argument --claims-package: {str(exc).splitlines()[0]}") from None
    chosen = available
    if args.claims is not None:
        tokens = args.claims.split(",")
        if any(not t.strip() for t in tokens):
            raise _usage(f"argument --claims: empty id in {args.claims!r}")
        try:
            chosen = harness.select_claims(available, tokens)
        except ValueError as exc:
            raise _usage(f"argument --claims: {exc}") from None
    try:
        expected = _expectations(dict(args.expect_fail), available)
    except ValueError as exc:
        raise _usage(f"argument --expect-fail: {exc}") from None
    return chosen, expected


def main_cli(args: argparse.Namespace) -> int:
    """Run ``udl audit``; returns the exit status (bad input raises :class:`udl.app.cli.UsageError`)."""
    from udl.engine import harness

    device = _check_device(args.device)
    dtype = getattr(torch, args.dtype)
    if args.matrix_encoders and not args.matrix:
        raise _usage("argument --with-encoders: only with --matrix")
    chosen, expected = _load_claims_for_cli(args)
    if not chosen:
        raise _usage(f"argument --claims-package: no claims found in {args.claims_package!r}")
    if args.out is not None:
        try:
            if args.matrix:
                _check_plain_target(args.out, "matrix.csv")
            else:
                from udl.engine import results

                results.check_target(args.out)
        except ValueError as exc:
            raise _usage(f"argument --out: {exc}") from None
    if args.matrix:
        if args.expect_fail:
            raise _usage("argument --expect-fail: not used with --matrix")
        encoders = None
        if args.matrix_encoders:
            encoders = {}
            for spec in args.matrix_encoders:
                encoder = _load_for_cli(spec, device, dtype)
                encoders[encoder_name(encoder)] = encoder
        else:
            encoders = shipped_encoders()
            for encoder in encoders.values():
                validate_encoder(encoder, device=device, dtype=dtype)
    else:
        encoder = _load_for_cli(args.encoder, device, dtype)
    from udl.app.cli import _executor_and_cache

    executor, cache = _executor_and_cache(args, prog="udl audit")
    try:
        with executor:
            if args.matrix:
                def report(audit):
                    print(f"{audit.summary()}", file=sys.stderr, flush=True)

                cells = encoder_matrix(encoders, profile=args.profile, claims=list(chosen.values()), seed=args.seed,
                                       device=device, dtype=dtype, executor=executor, cache=cache,
                                       progress=not args.no_progress, on_audit=report)
            else:
                audit = check_encoder(encoder, profile=args.profile, claims=list(chosen.values()), seed=args.seed,
                                      expected_failures=expected, device=device, dtype=dtype, executor=executor,
                                      controls=args.controls, cache=cache, progress=not args.no_progress,
                                      validate=False)
    except KeyboardInterrupt as exc:
        detail = str(exc) if isinstance(exc, harness.RunInterrupted) else "interrupted"
        print(f"udl audit: {detail}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.matrix:
        grid = matrix_grid(cells)
        print(grid.map(lambda o: _SHORT.get(o, o)).to_string())
        for note in matrix_notes(cells):
            print(note)
        counts = cells["outcome"].value_counts()
        print(f"matrix: {grid.shape[0]} claims x {grid.shape[1]} encoders (profile {args.profile}, seed {args.seed}); "
              + ", ".join(f"{int(counts.get(o, 0))} {o}" for o in AUDIT_OUTCOMES if counts.get(o, 0))
              + f"; {int(cells['differs'].sum())} cells differ from {grid.columns[0]}")
        if args.out is not None:
            note = ("The controls no-threshold and unscaled-threshold are audited declared as ista (their "
                    "slip is invisible to a capability declaration)." if not args.matrix_encoders else None)
            write_matrix(cells, args.out, profile=args.profile, seed=args.seed, note=note)
            print(f"matrix: {args.out}")
        return EXIT_NOT_OK if (cells["outcome"] == "ERROR").any() else EXIT_OK
    print(audit.format_table())
    print(audit.summary())
    if args.out is not None:
        write_audit(audit, args.out)
        print(f"results: {args.out}")
    return EXIT_OK if audit.ok else EXIT_NOT_OK


def _load_for_cli(spec: str, device: str, dtype):
    try:
        encoder = load_encoder(spec)
        validate_encoder(encoder, device=device, dtype=dtype)
    except (EncoderSpecError, EncoderInterfaceError) as exc:
        raise _usage(f"argument --encoder: {exc}") from None
    return encoder
