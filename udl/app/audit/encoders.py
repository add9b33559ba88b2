"""The encoders of an audit: loading them from specs, checking them against the interface, and the
shipped ones.

Encoders are given as objects or as specs (:func:`load_encoder`): a shipped name (``fista``),
``package.module:factory`` (a module on ``sys.path``) or ``path/to/file.py:factory`` (a file
anywhere; its directory is put on ``sys.path`` so that worker processes can import it too). The
factory is called without arguments (a class is instantiated); an attribute that is already an
encoder is used as is.

Importing this module loads neither torch nor the encoders (the ``udl audit`` parser lists
:data:`SHIPPED`); they are imported when an encoder is loaded or checked.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    import torch

    from udl.core.learned import LearnedStepISTA

__all__ = ["SHIPPED", "CONTROLS_DECLARED_AS_REFERENCE", "EncoderSpecError", "EncoderInterfaceError", "Declared",
           "learned_step_encoder", "shipped_encoders", "load_encoder", "encoder_name", "validate_encoder",
           "as_dtype"]

#: Shipped encoders by name → their spec for :func:`load_encoder` (a factory called without
#: arguments). ``learned-step`` is :func:`learned_step_encoder` (fitted on first use, about a second).
SHIPPED: dict[str, str] = {
    "ista": "udl.core.encoders:ISTA",
    "fista": "udl.core.encoders:FISTA",
    "hard-threshold": "udl.core.encoders:HardThresholdISTA",
    "lambda-decay": "udl.core.encoders:LambdaDecayISTA",
    "learned-step": "udl.app.audit.encoders:learned_step_encoder",
    "no-threshold": "udl.core.encoders:NoThreshold",
    "unscaled-threshold": "udl.core.encoders:UnscaledThresholdISTA",
}
#: The negative-control encoders audited in the matrix as their author would declare them: as
#: the reference ISTA (the slip is invisible to a capability declaration). Honestly declared,
#: most claims are NOT APPLICABLE to them and the matrix would show nothing of the slip.
CONTROLS_DECLARED_AS_REFERENCE = ("no-threshold", "unscaled-threshold")
#: Sizes of the smoke call that :func:`validate_encoder` makes before any claim runs: two
#: instances, m = 4, p = 6, n = 3, T = 3 layers (milliseconds; catches a wrong signature, shape,
#: dtype or a "differentiable" declaration without a gradient before minutes of claims).
_SMOKE = dict(batch=2, m=4, p=6, n=3, T=3, lam=0.1, step=0.1)


class EncoderSpecError(ValueError):
    """An encoder spec (``module:factory``, ``file.py:factory`` or a shipped name) cannot be loaded."""


class EncoderInterfaceError(ValueError):
    """An encoder does not meet the interface (capabilities, signature, output)."""


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
    0.2: the sizes of the code-error claims), float64, ``n_steps`` Adam steps. Deterministic.
    """
    import torch

    from udl.core.data import make_instances
    from udl.core.learned import LearnedStepISTA

    inst = make_instances(50, 100, 5, 50, batch=4, init_scale=0.0, seed=seed, dtype=torch.float64)
    return LearnedStepISTA.learn(inst.X, inst.D_star, lam=0.2, step=0.2, layers=layers, target=inst.Z_star,
                                 n_steps=n_steps)


def shipped_encoders(*, controls_as_reference: bool = True) -> dict[str, Any]:
    """The encoders of the matrix, by name: ista (reference), fista, hard-threshold, lambda-decay,
    learned-step, no-threshold, unscaled-threshold.

    Parameters
    ----------
    controls_as_reference : bool
        Wrap the two negative controls in :class:`Declared` with ISTA's capabilities (default),
        so that every claim runs against them; False keeps their own (honest) declarations.
    """
    from udl.core.encoders import ISTA

    encoders = {name: load_encoder(name) for name in SHIPPED}
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
            return load_encoder(SHIPPED[spec])
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


def as_dtype(dtype) -> torch.dtype:
    """A torch dtype from a torch dtype or its name (``"float64"``, ``"torch.float32"``)."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype.removeprefix("torch."), None), torch.dtype):
        return getattr(torch, dtype.removeprefix("torch."))
    raise ValueError(f"unknown dtype {dtype!r} (allowed: float32, float64)")


def validate_encoder(encoder, *, device: str = "cpu", dtype: torch.dtype | str = "float64") -> frozenset:
    """Check an encoder against the interface; return its declared capabilities.

    The encoder must declare ``capabilities`` (a set of names from :data:`udl.CAPABILITIES`)
    and map ``(X (B, m, n), D (B, m, p), lam=, step=, T=)`` to codes ``(B, p, n)`` of X's dtype,
    finite; when it declares "differentiable", the codes must carry a gradient to D. This is one
    smoke call on a tiny problem (:data:`_SMOKE`), made before any claim runs.

    Parameters
    ----------
    encoder : object
    device : str
        Where the smoke call computes.
    dtype : torch.dtype or str
        Its dtype (default float64).

    Raises
    ------
    EncoderInterfaceError
        The first thing that is wrong, in one line naming the encoder.
    """
    import torch

    from udl.core.encoders import CAPABILITIES

    dtype = as_dtype(dtype)
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
