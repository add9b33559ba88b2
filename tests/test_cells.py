"""Typed cells (canonical form, seeds, validation), table schemas, the recorded claims package,
and the engine's device check."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pytest
import torch

from udl import engine
from udl.engine import results
from udl.engine.anatomy import Claim, check_claim, check_device
from udl.engine.cells import as_cell, canonical_cell, cell_dict, instance_seeds
from udl.engine.discovery import discover
from udl.engine.runner import replay, run
from udl.engine.schema import check_table, column_type

QUICK = "quick"


@dataclass(frozen=True)
class FlipCell:
    flips: int
    p: float
    label: str = "fair"
    loaded: bool = False


def _profiles(cells, n=6):
    spec = {"cells": cells, "n_instances": n}
    return {"quick": spec, "ci": spec, "paper": spec}


class _Coin(Claim):
    """A toy claim with typed cells and a schema (heads: int, fraction: float, side: str)."""

    theorem = "C"
    title = statement = effect = regime = control = "toy"
    kind = "probabilistic"
    Cell = FlipCell
    schema = {"heads": "int", "fraction": "float", "side": "str"}
    discrete_columns = frozenset({"heads", "fraction"})  # counts out of `flips`: instances may tie

    def simulate(self, cell, seeds, ctx):
        assert isinstance(cell, FlipCell)
        heads = [np.random.default_rng(s).binomial(cell.flips, cell.p) for s in seeds]
        return pd.DataFrame({"instance": np.arange(len(seeds)), "heads": heads,
                             "fraction": np.asarray(heads) / cell.flips, "side": cell.label})

    def decide(self, table):
        inside = (table["fraction"] - 0.5).abs() <= 0.2
        return engine.stats.rate_test(int(inside.sum()), len(table), 0.5, alpha=self.alpha, name="in band")


class TypedCoin(_Coin):
    id = "C.typed"
    profiles = _profiles([FlipCell(flips=50, p=0.5), FlipCell(flips=80, p=0.5, label="other")])


class DictCoin(_Coin):
    """The same claim with its cells written as dicts (converted to FlipCell)."""

    id = "C.typed"
    profiles = _profiles([{"flips": 50, "p": 0.5}, {"flips": 80, "p": 0.5, "label": "other"}])


class LegacyCoin(_Coin):
    """No Cell: dict cells, passed to simulate as dicts (here wrapped to reuse simulate)."""

    id = "C.typed"
    Cell = None
    profiles = _profiles([{"flips": 50, "p": 0.5}, {"flips": 80, "p": 0.5, "label": "other"}])

    def simulate(self, cell, seeds, ctx):
        assert isinstance(cell, dict)
        return super().simulate(FlipCell(**cell), seeds, ctx)


# --------------------------------------------------------------------------- canonical form
def test_a_cell_has_the_canonical_form_and_seeds_of_the_dict_naming_the_same_parameters():
    cell = FlipCell(flips=50, p=0.5)
    assert cell_dict(cell) == {"flips": 50, "p": 0.5}  # fields at their default are not named
    assert canonical_cell(cell) == canonical_cell({"p": 0.5, "flips": 50}) == '{"flips":50,"p":0.5}'
    assert canonical_cell(FlipCell(flips=50, p=0.5, label="other", loaded=True)) == \
        '{"flips":50,"label":"other","loaded":true,"p":0.5}'
    assert instance_seeds(3, "C", cell, 5) == instance_seeds(3, "C", {"flips": 50, "p": 0.5}, 5)
    assert canonical_cell(FlipCell(flips=np.int64(50), p=np.float64(0.5))) == canonical_cell(cell)
    assert instance_seeds(3, "C", replace(cell, p=0.6), 5) != instance_seeds(3, "C", cell, 5)


def test_dict_cells_are_converted_and_typed_runs_equal_dict_and_legacy_runs():
    assert TypedCoin().cells(QUICK) == DictCoin().cells(QUICK) == \
        [FlipCell(50, 0.5), FlipCell(80, 0.5, "other")]
    assert LegacyCoin().cells(QUICK) == [{"flips": 50, "p": 0.5}, {"flips": 80, "p": 0.5, "label": "other"}]
    typed, converted, legacy = (run([cls()], QUICK, 4, progress=False).claims["C.typed"]
                                for cls in (TypedCoin, DictCoin, LegacyCoin))
    pd.testing.assert_frame_equal(typed.table, converted.table)
    pd.testing.assert_frame_equal(typed.table, legacy.table)
    assert list(typed.table.columns[:8]) == ["claim", "control", "cell", "seed", "instance", "flips", "p", "heads"]
    assert typed.table["label"].isna().sum() == 2 * 6 and set(typed.table["label"].dropna()) == {"other"}
    assert typed.verdict.statistic == legacy.verdict.statistic and typed.outcome == legacy.outcome


def test_replay_accepts_the_cell_or_its_recorded_parameters():
    claim = TypedCoin()
    row = run([claim], QUICK, 2, progress=False).claims["C.typed"].table.iloc[0]
    for cell in ({"flips": int(row["flips"]), "p": float(row["p"])}, FlipCell(flips=50, p=0.5)):
        assert replay(claim, cell, int(row["seed"]))["heads"].iloc[0] == row["heads"]


# --------------------------------------------------------------------------- validation
def _problems(cls) -> str:
    return "\n".join(check_claim(cls))


def test_check_claim_validates_every_profile_cell_against_the_cell_class():
    class Bad(TypedCoin):
        profiles = {"quick": {"cells": [{"flips": 50, "p": 1}], "n_instances": 2},
                    "ci": {"cells": [{"flips": 50.0, "p": 0.5, "coins": 2}], "n_instances": 2},
                    "paper": {"cells": [{"p": 0.5}, FlipCell(flips=True, p=0.5), {"flips": 5, "p": 0.5}],
                              "n_instances": 2}}

    problems = _problems(Bad)
    assert "C.typed profile 'quick': cell field 'p' = 1 is a int, expected float" in problems
    assert "C.typed profile 'ci': cell field 'flips' = 50.0 is a float, expected int" in problems
    assert "C.typed profile 'ci': unknown cell field 'coins'" in problems
    assert "C.typed profile 'paper': cell {'p': 0.5} is missing field(s) flips" in problems
    assert "cell field 'flips' = True is a bool, expected int" in problems
    assert len(check_claim(Bad)) == 5
    assert check_claim(TypedCoin) == check_claim(DictCoin) == check_claim(LegacyCoin) == []


def test_check_claim_rejects_a_cell_of_another_class_and_a_malformed_cell_class():
    @dataclass(frozen=True)
    class Other:
        flips: int

    class Foreign(TypedCoin):
        profiles = _profiles([Other(flips=3)])

    assert "not the claim's Cell" in _problems(Foreign)

    @dataclass
    class Mutable:
        seed: int
        shape: tuple = (1, 2)

    class Malformed(TypedCoin):
        Cell = Mutable

    problems = _problems(Malformed)
    assert "frozen" in problems and "'seed' is reserved" in problems and "'shape' has type 'tuple'" in problems

    class NotADataclass(TypedCoin):
        Cell = dict

    assert "is not a dataclass" in _problems(NotADataclass)


def test_a_cell_class_keeps_pickling_and_conversion_simple():
    assert as_cell({"flips": 3, "p": 0.1}, FlipCell) == FlipCell(3, 0.1)
    assert as_cell(FlipCell(3, 0.1), FlipCell) == FlipCell(3, 0.1)
    original = {"flips": 3}
    copy = as_cell(original, None)
    assert copy == original and copy is not original


# --------------------------------------------------------------------------- schema
def test_column_types():
    assert column_type(pd.Series([1, 2])) == "int"
    assert column_type(pd.Series([1.0, np.nan])) == "float"
    assert column_type(pd.Series([True, False])) == "bool"
    assert column_type(pd.Series(["a", None, np.nan])) == "str"
    assert column_type(pd.Series(["a", 1.5])) == "object (float, str)"


def test_check_table_names_the_claim_column_expected_and_found_type():
    schema = {"heads": "int", "side": "str"}
    ok = pd.DataFrame({"instance": [0], "flips": [3], "heads": [1], "side": ["h"]})
    check_table(ok, schema, "C.1", exempt=["flips"])
    with pytest.raises(ValueError, match=r"C\.1: .*column 'heads': expected int, found float"):
        check_table(ok.assign(heads=[1.0]), schema, "C.1", exempt=["flips"])
    with pytest.raises(ValueError, match=r"column 'side' is missing \(expected str\)"):
        check_table(ok.drop(columns="side"), schema, "C.1", exempt=["flips"])
    with pytest.raises(ValueError, match=r"column 'extra' \(float\) is not in the schema"):
        check_table(ok.assign(extra=0.5), schema, "C.1", exempt=["flips"])


def test_a_table_that_does_not_fit_the_schema_errors_the_cell_and_the_control_is_checked_too():
    class Drifting(TypedCoin):
        def simulate(self, cell, seeds, ctx):
            table = super().simulate(cell, seeds, ctx)
            return table.assign(heads=table["heads"].astype(float)) if ctx.control else table

    result = run([Drifting()], QUICK, 0, progress=False).claims["C.typed"]
    assert result.outcome in ("PASS", "FAIL", "INCONCLUSIVE") and result.error is None
    assert result.control_outcome == "ERROR"
    assert "C.typed: simulate() table does not fit the schema: column 'heads': expected int, found float" \
        in result.control_error

    class Unchecked(Drifting):
        schema = None

    assert run([Unchecked()], QUICK, 0, progress=False).claims["C.typed"].control_error is None


def test_check_claim_checks_the_schema_declaration():
    class BadSchema(TypedCoin):
        schema = {"heads": "integer", "seed": "int"}

    problems = _problems(BadSchema)
    assert "schema column 'heads' has type 'integer'" in problems and "'seed' is not a string or is reserved" \
        in problems


def test_every_shipped_claim_declares_a_cell_and_a_schema():
    claims = discover("claims")
    assert claims and all(c.Cell is not None and c.schema for c in claims.values())


# --------------------------------------------------------------------------- run record
def test_the_run_records_the_claims_package(toy_claims, tmp_path):
    inferred = run(toy_claims, QUICK, 0, out_dir=tmp_path / "a", progress=False)
    assert inferred.claims_package == "toy_claims"
    given = run(toy_claims, QUICK, 0, out_dir=tmp_path / "b", progress=False, claims_package="tests/toy_claims")
    record = json.loads((tmp_path / "b" / results.RESULTS_FILE).read_text())
    assert given.claims_package == record["run"]["claims_package"] == "tests/toy_claims"
    first = json.loads((tmp_path / "a" / results.RESULTS_FILE).read_text())
    assert json.dumps(first["claims"], sort_keys=True) == json.dumps(record["claims"], sort_keys=True)


# --------------------------------------------------------------------------- devices
@pytest.mark.parametrize("device", ["tpu", "cuda:x", "cpu:0", ""])
def test_check_device_rejects_malformed_names(device):
    with pytest.raises(ValueError, match=f"invalid device {device!r} \\(allowed: cpu, cuda, cuda:N\\)"):
        check_device(device)


def test_check_device_accepts_cpu_and_only_the_cuda_devices_present():
    assert check_device("cpu") == engine.check_device("cpu") == "cpu"
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ValueError, match=f"'cuda:{count}'"):
        check_device(f"cuda:{count}")
    if count:
        assert check_device("cuda") == "cuda" and check_device(f"cuda:{count - 1}") == f"cuda:{count - 1}"
