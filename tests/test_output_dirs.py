"""Output directories: the probe write, what counts as udl's, and replacing only what is udl's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from udl.engine import files, results
from udl.engine.files import OutputPathError

LAYOUT = {"results.json": None, "tables": (".csv.gz",), "figures": (".png", ".pdf")}


def _tree(root: Path, names: list[str]) -> Path:
    for name in names:
        path = root / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
    return root


def test_a_probe_write_checks_the_nearest_existing_directory_and_leaves_nothing(tmp_path):
    assert files.check_writable(tmp_path / "a" / "b") == tmp_path
    assert files.check_writable(tmp_path / "new", beside=True) == tmp_path
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="is not a directory"):
        files.check_writable(tmp_path / "file" / "sub")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs a Linux /proc")
def test_a_probe_write_fails_where_permission_bits_do_not_tell():
    with pytest.raises(OutputPathError, match="probe write in '/proc' failed"):
        files.check_writable("/proc/udl-test")


def test_what_counts_as_udls(tmp_path):
    _tree(tmp_path, ["results.json", "tables/A.csv.gz", "figures/A-x.png", "figures/A-x.pdf",
                     ".results.json.tmp-0123456789ab", "tables/.B.csv.gz.tmp-0123456789ab"])
    assert files.foreign_entries(tmp_path, LAYOUT) == []
    _tree(tmp_path, ["NOTES.md", "tables/mine.txt", "figures/sub/", "results.json.bak", ".results.json.tmp-xyz"])
    (tmp_path / "link").symlink_to(tmp_path / "results.json")
    assert files.foreign_entries(tmp_path, LAYOUT) == [".results.json.tmp-xyz", "NOTES.md", "figures/sub",
                                                       "link", "results.json.bak", "tables/mine.txt"]


def test_a_layout_name_of_the_wrong_kind_is_not_udls(tmp_path):
    _tree(tmp_path, ["tables", "results.json/"])              # a file where a folder belongs, and vice versa
    assert files.foreign_entries(tmp_path, LAYOUT) == ["results.json/", "tables"]


def test_check_replaceable_of_some_names_ignores_the_others(tmp_path):
    _tree(tmp_path, ["NOTES.md", "figures/A.png"])
    files.check_replaceable(tmp_path, LAYOUT, "report directory", names=["figures"])
    _tree(tmp_path, ["figures/sketch.txt"])
    with pytest.raises(OutputPathError, match=r"figures/sketch\.txt"):
        files.check_replaceable(tmp_path, LAYOUT, "report directory", names=["figures"])


def test_discard_deletes_only_a_directory_that_is_all_udls(tmp_path):
    ours = _tree(tmp_path / "ours", ["results.json", "tables/A.csv.gz"])
    assert files.discard_directory(ours, LAYOUT) == [] and not ours.exists()
    mixed = _tree(tmp_path / "mixed", ["results.json", "NOTES.md"])
    assert files.discard_directory(mixed, LAYOUT) == ["NOTES.md"]
    assert (mixed / "NOTES.md").read_text() == "x" and (mixed / "results.json").exists()


def test_the_run_layout_names_every_file_udl_writes_into_a_run(toy_claims, tmp_path):
    from udl.app.audit.results import AUDIT_FILES
    from udl.app.report.writer import FIGURES_DIR, REPORT_HTML, REPORT_MD
    from udl.engine.runner import run

    assert set(AUDIT_FILES) | {FIGURES_DIR, REPORT_HTML, REPORT_MD} <= set(results.RUN_LAYOUT)
    run([toy_claims["T.1a"]], "quick", 0, out_dir=tmp_path / "r", progress=False)
    from udl.app import report

    report.render(tmp_path / "r", vector="both")
    assert files.foreign_entries(tmp_path / "r", results.RUN_LAYOUT) == []


def test_an_earlier_run_is_replaced_and_only_udls_entries_are_deleted(toy_claims, tmp_path, monkeypatch, capsys):
    from udl.engine.runner import run

    target = tmp_path / "r"
    run([toy_claims["T.1a"]], "quick", 0, out_dir=target, progress=False)
    assert results.inspect_target(target).replaces.startswith("the earlier run there (profile quick, seed 0, 1 claim")
    # a file that appears while the new run is being written (after the check) survives, set aside
    real = files.discard_directory

    def sneaky(directory, layout):
        (Path(directory) / "NOTES.md").write_text("written meanwhile")
        return real(directory, layout)

    monkeypatch.setattr(results, "discard_directory", sneaky)
    run([toy_claims["T.1a"]], "quick", 1, out_dir=target, progress=False)
    assert "NOTES.md" in capsys.readouterr().err
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith(".r.old-")]
    assert (aside / "NOTES.md").read_text() == "written meanwhile"
    assert results.load_results(target)["run"]["seed"] == 1
    shutil.rmtree(aside)


def test_refusals_name_the_directory_and_why(tmp_path):
    notes = _tree(tmp_path / "notes", ["NOTES.md", "results.json"])
    (notes / "results.json").write_text("{}")
    with pytest.raises(OutputPathError, match="not a valid udl run"):
        results.check_target(notes)
    with pytest.raises(OutputPathError, match="not a udl run"):
        results.check_target(_tree(tmp_path / "user", ["a.txt"]))
    (tmp_path / "link").symlink_to(notes)
    with pytest.raises(OutputPathError, match="symbolic link"):
        results.check_target(tmp_path / "link")
    assert results.inspect_target(tmp_path / "empty").replaces is None
