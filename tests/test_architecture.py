"""The floor plan of udl (docs/architecture.md), checked.

- the import contracts of pyproject.toml ([tool.importlinter]: layers core <- engine <- claims <-
  app, no cycles between sibling modules, private modules private) hold, by running lint-imports;
- no private name (leading underscore) is imported from a module of another layer;
- no module of udl/ is longer than MAX_MODULE_LINES;
- udl/ names no claim id: everything theorem-specific lives in the claims package;
- ``import udl`` and building the ``udl`` command's parser load no application module and no torch
  (what keeps ``udl --help`` fast; its wall time is measured in the README, not asserted here).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UDL = ROOT / "udl"
#: Longest module allowed in udl/ (issue: "no module above 600 lines"): a module past it holds
#: more than one job and is split along its seams.
MAX_MODULE_LINES = 600
#: Layer of a module, by its dotted name; claims are the top-level ``claims`` package.
LAYERS = ("udl.core", "udl.engine", "claims", "udl.app")


def _layer(module: str) -> str | None:
    return next((layer for layer in LAYERS if module == layer or module.startswith(layer + ".")), None)


def _modules(*roots: Path):
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imported_names(name: str, path: Path):
    """(module imported from, name) for every ``from M import n`` of a module, relative ones resolved."""
    package = name if _is_package(path) else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                yield source, alias.name


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    command = [str(lint)] if lint.exists() else [sys.executable, "-m", "importlinter.cli"]
    done = subprocess.run([*command, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BROKEN" not in done.stdout and "Contracts: 3 kept, 0 broken" in done.stdout, done.stdout


def test_no_private_name_crosses_a_layer():
    crossings = []
    for name, path in _modules(UDL, ROOT / "claims"):
        mine = _layer(name)
        for source, imported in _imported_names(name, path):
            theirs = _layer(source)
            if theirs and mine and theirs != mine and imported.startswith("_") and not imported.startswith("__"):
                crossings.append(f"{name} imports {imported} from {source}")
    assert not crossings, "\n".join(crossings)


def test_the_checker_sees_a_private_crossing(tmp_path):
    """The AST scan above must notice a private import across layers (else it cannot fail)."""
    module = tmp_path / "probe.py"
    module.write_text("from udl.core.encoders import _soft_threshold\nfrom . import _x\n", encoding="utf-8")
    found = list(_imported_names("claims.probe", module))
    assert ("udl.core.encoders", "_soft_threshold") in found and ("claims", "_x") in found
    assert _layer("udl.core.encoders") != _layer("claims.probe")


def test_no_module_of_udl_is_longer_than_the_limit():
    long = {}
    for _, path in _modules(UDL):
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_MODULE_LINES:
            long[str(path.relative_to(ROOT))] = n
    assert not long, f"modules above {MAX_MODULE_LINES} lines: {long}"


def test_udl_names_no_claim_id():
    from udl.engine.harness import discover

    ids = sorted(discover("claims"))
    assert len(ids) >= 14
    pattern = re.compile("|".join(rf"(?<![\w.]){re.escape(cid)}(?![\w])" for cid in ids))
    hits = [f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
            for _, path in _modules(UDL)
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if pattern.search(line)]
    assert not hits, "claim ids in udl/ (they belong in claims/):\n" + "\n".join(hits)


def _loaded_after(code: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    return set(done.stdout.split())


@pytest.mark.parametrize("code", [
    "import udl",
    "from udl.app.cli import build_parser\nbuild_parser()",
])
def test_starting_loads_no_application_module_and_no_torch(code):
    loaded = _loaded_after(code)
    heavy = sorted(m for m in loaded if m.split(".")[0] in ("torch", "scipy", "pandas", "matplotlib"))
    assert not heavy, f"{code!r} imports {heavy[:5]}"
    if code == "import udl":
        assert not [m for m in loaded if m.startswith("udl.app")]
