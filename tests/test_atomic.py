"""``conserve_verified.atomic``: a write is complete or absent, never half done."""

from __future__ import annotations

from pathlib import Path

import pytest

from conserve_verified.atomic import atomic_path, atomic_write_bytes, atomic_write_text


def test_atomic_write_bytes_then_read_gives_the_bytes(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(target, b"\x00abc")
    assert target.read_bytes() == b"\x00abc"
    atomic_write_text(target, "ünïcode\n")
    assert target.read_text(encoding="utf-8") == "ünïcode\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.bin"]


def test_atomic_path_failure_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer died")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_atomic_path_temporary_is_beside_the_target(tmp_path: Path) -> None:
    target = tmp_path / "f.pt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_bytes(b"x")
    assert target.read_bytes() == b"x"


def test_atomic_savefig_writes_a_png_and_leaves_the_figure_open(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from conserve_verified.atomic import atomic_savefig

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    target = tmp_path / "plot.png"
    atomic_savefig(fig, target, dpi=50)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.fignum_exists(fig.number)
    plt.close(fig)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]


def test_atomic_write_new_file_mode_is_0666_minus_umask(tmp_path: Path) -> None:
    import os
    import stat

    from conserve_verified.atomic import current_umask

    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        target = tmp_path / "new.txt"
        atomic_write_text(target, "x")
        assert stat.S_IMODE(target.stat().st_mode) == 0o640
    finally:
        os.umask(old)
    os.umask(0o022)
    try:
        other = tmp_path / "other.txt"
        atomic_write_text(other, "y")
        assert stat.S_IMODE(other.stat().st_mode) == 0o644
    finally:
        os.umask(old)


def test_atomic_write_keeps_the_mode_of_a_replaced_file(tmp_path: Path) -> None:
    import os
    import stat

    target = tmp_path / "f.txt"
    target.write_text("old")
    os.chmod(target, 0o604)
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o604
