"""Every real claim in claims/ PASSES at the chosen profile and its negative control FAILS.

Runs through the same engine function as `udl verify` (``udl.engine.harness.run``): one run over all
collected claims (so the Holm family is the same as the command's), shared by the
parametrised tests. Options (see conftest.py): ``--claims-profile`` (default quick),
``--claims-seed`` (default 0), ``--claims-out DIR`` (write the run directory there, exactly as
``udl verify --out DIR`` would). Statistics are attached to the JUnit report as properties
(per test case when ``junit_family`` is xunit1, else as suite properties).
Select claims with ``-k``, e.g. ``pytest tests/test_claims.py -k II.3``.
"""

from __future__ import annotations

import pytest

from claims import discover
from udl.engine.harness import Context, run

CLAIMS = discover()
PARAMS = list(CLAIMS) or [pytest.param(None, id="no-claims",
                                       marks=pytest.mark.skip(reason="no claims in claims/ yet"))]


@pytest.fixture(scope="session")
def claims_run(request):
    """One engine run over the claims collected in this session."""
    wanted = sorted({item.callspec.params["claim_id"] for item in request.session.items
                     if hasattr(item, "callspec") and item.callspec.params.get("claim_id") in CLAIMS})
    config = request.config
    return run({cid: CLAIMS[cid] for cid in wanted}, config.getoption("--claims-profile"),
               config.getoption("--claims-seed"), Context(), out_dir=config.getoption("--claims-out"),
               progress=False)


def _properties(result) -> dict:
    verdict, control = result.verdict, result.control_verdict
    props = {"outcome": result.outcome, "p_raw": result.p_raw, "p_adjusted": result.p_adjusted,
             "alpha": result.claim.alpha, "beta": result.claim.beta,
             "control_outcome": result.control_outcome, "seconds": round(result.seconds, 3)}
    if verdict is not None:
        props.update({"statistic_name": verdict.statistic_name, "statistic": verdict.statistic,
                      "interval_low": verdict.interval[0], "interval_high": verdict.interval[1],
                      "threshold": verdict.threshold, "n": verdict.n})
    if control is not None:
        props.update({"control_statistic": control.statistic, "control_interval_low": control.interval[0],
                      "control_interval_high": control.interval[1], "control_p": control.p_value})
    return props


@pytest.fixture
def record_claim(request):
    """Attach a claim's statistics to the JUnit report.

    Per test case (``record_property``) under junit_family xunit1/legacy; under the default
    xunit2, which has no per-test properties (pytest warns, and warnings are errors here),
    as suite properties named ``<claim id>.<key>`` (``record_testsuite_property``).
    """
    per_test = request.config.getini("junit_family") in ("xunit1", "legacy")
    record = request.getfixturevalue("record_property" if per_test else "record_testsuite_property")

    def attach(claim_id, properties):
        for key, value in properties.items():
            record(key if per_test else f"{claim_id}.{key}", value)

    return attach


@pytest.mark.parametrize("claim_id", PARAMS)
def test_claim(claim_id, claims_run, record_claim):
    result = claims_run.claims[claim_id]
    record_claim(claim_id, _properties(result))
    where = f"{claim_id} at profile {result.profile}"
    if not result.decided:   # reported, not decided, at this profile (Claim.decides_at): never FAIL or ERROR
        assert result.outcome == "INCONCLUSIVE" and result.verdict is not None \
            and result.verdict.outcome != "FAIL", f"{where} (reported only): {result.error or result.verdict}"
    else:
        assert result.outcome == "PASS", (f"{where}: {result.outcome} "
                                          f"{result.error or result.verdict} (Holm-adjusted p={result.p_adjusted})")
    assert result.control_outcome == "FAIL", (f"{where}: negative control gave {result.control_outcome} "
                                              f"{result.control_error or result.control_verdict}")
