"""udl.engine.files.atomic_write: the whole new content or the old file, never a part."""

import os

import pytest

from udl.engine import files


def test_writes_bytes_and_utf8_text_and_replaces_the_old_content(tmp_path):
    target = tmp_path / "out.bin"
    files.atomic_write(target, b"\x00\x01old")
    assert target.read_bytes() == b"\x00\x01old"
    files.atomic_write(str(target), "θ₀ ± margin\n")
    assert target.read_bytes() == "θ₀ ± margin\n".encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]  # no temporary file left


def test_a_failed_rename_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_text("old", encoding="utf-8")

    def fail(src, dst):
        raise OSError("simulated rename failure")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="simulated"):
        files.atomic_write(target, "new")
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_data_that_is_not_bytes_or_text_is_refused_naming_its_type(tmp_path):
    with pytest.raises(TypeError, match="got dict"):
        files.atomic_write(tmp_path / "x", {"a": 1})
    assert not any(tmp_path.iterdir())


def test_a_missing_directory_raises_and_creates_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        files.atomic_write(tmp_path / "missing" / "x", b"data")
    assert not any(tmp_path.iterdir())
