"""pooltools.atomic: a failed write leaves the old file and no temp file behind."""

from __future__ import annotations

import json
import os
import stat

import pytest

from pooltools.atomic import atomic_write, write_json_atomic, write_text_atomic


def test_writes_text_and_json_with_the_usual_permissions(tmp_path):
    path = write_text_atomic(tmp_path / "sub" / "a.txt", "héllo")
    assert path.read_text("utf-8") == "héllo"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    write_json_atomic(tmp_path / "b.json", {"x": [1, 2]})
    assert json.loads((tmp_path / "b.json").read_text()) == {"x": [1, 2]}


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_interrupted_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, error):
    path = write_text_atomic(tmp_path / "a.txt", "old")

    def half_then_fail(f):
        f.write(b"half of the new")
        raise error

    with pytest.raises(error):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]
