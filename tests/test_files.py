"""Atomic writes: a file or directory is replaced whole, or left as it was."""

from __future__ import annotations

import pytest

from textclf.files import atomic_path, atomic_write_text, remove_stale_temporaries


def leftovers(directory, name):
    """Hidden temporary or moved-aside paths that atomic_path made beside ``name``."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(f".{name}."))


def test_file_is_replaced_on_success(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"  # nothing visible before the block ends
    assert target.read_text() == "new"
    assert leftovers(tmp_path, "metrics.json") == []


def test_file_keeps_its_old_content_when_the_block_raises(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half-writ")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert leftovers(tmp_path, "metrics.json") == []


def test_new_file_is_absent_when_the_block_raises(tmp_path):
    target = tmp_path / "sub" / "errors.csv"
    with pytest.raises(KeyError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise KeyError("x")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_directory_is_replaced_whole(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old-weights.bin").write_text("old")
    (target / "config.json").write_text("{old}")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "config.json").write_text("{new}")
        assert (target / "old-weights.bin").read_text() == "old"  # readers still see the old directory
    assert sorted(p.name for p in target.iterdir()) == ["config.json"]
    assert (target / "config.json").read_text() == "{new}"
    assert leftovers(tmp_path, "model") == []


def test_directory_keeps_its_old_content_when_the_block_raises(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text("{old}")
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "config.json").write_text("{new}")
        raise OSError("disk full")
    assert sorted(p.name for p in target.iterdir()) == ["config.json"]
    assert (target / "config.json").read_text() == "{old}"
    assert leftovers(tmp_path, "model") == []


def test_directory_survives_a_block_that_writes_nothing(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text("{old}")
    with pytest.raises(OSError), atomic_path(target):
        pass
    assert (target / "config.json").read_text() == "{old}"


def test_atomic_write_text_is_utf8(tmp_path):
    target = tmp_path / "deep" / "notes.txt"
    atomic_write_text(target, "caf\u00e9 \u2013 \u65e5\u672c")
    assert target.read_bytes() == "caf\u00e9 \u2013 \u65e5\u672c".encode("utf-8")
    atomic_write_text(target, "second")
    assert target.read_text(encoding="utf-8") == "second"


def test_what_a_killed_atomic_write_leaves_is_removed_and_nothing_else(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / ".hidden-config").write_text("kept: not a temporary")
    leftover = tmp_path / ".model.abc123.tmp"  # what SIGKILL leaves (no finally ran)
    (leftover / "model").mkdir(parents=True)
    (tmp_path / ".metrics.json.old-12.tmp").write_text("old")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == [".metrics.json.old-12.tmp", ".model.abc123.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden-config", "metrics.json"]
    assert remove_stale_temporaries(tmp_path / "missing") == []
