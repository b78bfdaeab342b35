"""Atomic writes: bytes, a file to copy or a writer; the mode asked for; nothing torn or left."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from rdcore.files import directories_up_to, sha256_file, write_atomically


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_bytes_a_file_or_a_writer_end_up_at_the_path(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"copied")

    write_atomically(tmp_path / "a" / "bytes.bin", b"written")
    write_atomically(tmp_path / "a" / "copy.bin", source)
    write_atomically(tmp_path / "a" / "writer.bin", lambda temp: temp.write_bytes(b"by writer"))

    assert (tmp_path / "a" / "bytes.bin").read_bytes() == b"written"
    assert (tmp_path / "a" / "copy.bin").read_bytes() == b"copied"
    assert (tmp_path / "a" / "writer.bin").read_bytes() == b"by writer"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "bytes.bin",
        "copy.bin",
        "writer.bin",
    ]


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o640])
def test_the_file_gets_the_mode_asked_for(tmp_path: Path, mode: int) -> None:
    write_atomically(tmp_path / "bytes.bin", b"x", mode=mode, fsync=False)
    write_atomically(tmp_path / "writer.bin", lambda temp: temp.write_bytes(b"x"), mode=mode)

    assert _mode(tmp_path / "bytes.bin") == mode
    assert _mode(tmp_path / "writer.bin") == mode


def test_default_mode_is_readable_by_others(tmp_path: Path) -> None:
    write_atomically(tmp_path / "file.bin", b"x")

    assert _mode(tmp_path / "file.bin") == 0o644


def test_a_failing_writer_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "target.bin"
    target.write_bytes(b"old")

    def half_write(temp: Path) -> None:
        temp.write_bytes(b"half")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        write_atomically(target, half_write)

    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["target.bin"]


def test_sha256_file(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000  # more than one read chunk
    (tmp_path / "data.bin").write_bytes(data)

    assert sha256_file(tmp_path / "data.bin") == hashlib.sha256(data).hexdigest()


def test_directories_up_to_the_root(tmp_path: Path) -> None:
    path = tmp_path / "root" / "a" / "b" / "file.bin"

    assert directories_up_to(path, tmp_path / "root") == [
        tmp_path / "root" / "a" / "b",
        tmp_path / "root" / "a",
        tmp_path / "root",
    ]
