"""pooltools.bench: every row is there and every ratio is time / baseline (speed is not asserted)."""

from __future__ import annotations

import json

import pytest

from pooltools import bench
from pooltools.bench import (
    BASELINE,
    FORWARD,
    FORWARD_BACKWARD,
    BenchConfig,
    format_table,
    run_benchmark,
)

TINY = (
    BenchConfig(
        "tiny k2 s2", kernel_size=2, stride=2, shape=(2, 3, 8, 8), naive_shape=(1, 1, 8, 8)
    ),
    BenchConfig(
        "tiny k3 s2 p1",
        kernel_size=3,
        stride=2,
        padding=1,
        shape=(2, 3, 8, 8),
        naive_shape=(1, 1, 8, 8),
    ),
)


EXPECTED = {
    ("naive loops (extrapolated from 1×1×8×8)", FORWARD),
    ("numpy vectorized", FORWARD),
    ("ScratchMaxPool2d (torch ops)", FORWARD),
    (BASELINE, FORWARD),
    ("PyTorch channels_last", FORWARD),
    ("numpy (return_indices) + max_pool2d_backward", FORWARD_BACKWARD),
    ("ScratchMaxPool2d (torch ops)", FORWARD_BACKWARD),
    (BASELINE, FORWARD_BACKWARD),
    ("PyTorch channels_last", FORWARD_BACKWARD),
}


@pytest.fixture(scope="module")
def tiny_rows() -> list[bench.BenchRow]:
    return run_benchmark(TINY, repeats=1, warmup=0)


def test_every_config_has_every_row(tiny_rows):
    for cfg in TINY:
        got = [(r.method, r.pass_) for r in tiny_rows if r.config == cfg.name]
        assert len(got) == len(EXPECTED) and set(got) == EXPECTED, cfg.name


def test_ratios_are_time_over_the_matching_torch_nchw_row(tiny_rows):
    for cfg in TINY:
        rows = [r for r in tiny_rows if r.config == cfg.name]
        baseline = {r.pass_: r.time_ms for r in rows if r.method == BASELINE}
        for r in rows:
            assert r.time_ms > 0
            assert r.baseline_ms == baseline[r.pass_]
            assert r.ratio == pytest.approx(r.time_ms / baseline[r.pass_], rel=1e-12)
        assert all(r.ratio == 1.0 for r in rows if r.method == BASELINE)


def test_naive_time_is_extrapolated_per_element(monkeypatch):
    """With every timing faked to 1 ms, the naive row is 1 ms x (full / small element count)."""
    monkeypatch.setattr(bench, "_median_ms", lambda fns, repeats, warmup: [1.0] * len(fns))
    rows = run_benchmark(TINY[:1], repeats=1)
    naive = next(r for r in rows if r.method.startswith("naive"))
    assert naive.time_ms == pytest.approx(2 * 3 * 8 * 8 / (1 * 1 * 8 * 8))
    assert naive.ratio == pytest.approx(6.0)
    assert all(r.ratio == 1.0 for r in rows if r is not naive)


def test_table_shows_every_row_once(tiny_rows):
    table = format_table(tiny_rows, TINY)
    lines = table.splitlines()
    assert "time (ms)" in lines[0] and "vs torch NCHW" in lines[0]
    body = [line for line in lines[2:] if line.strip()]
    assert len(body) == len(tiny_rows)
    for row, line in zip(tiny_rows, body, strict=True):
        assert row.method in line and row.pass_ in line
        assert f"{row.ratio:.2f}×" in line and f"{row.time_ms:.3f}" in line
        assert "2×3×8×8" in line  # the input shape is part of the config label


def test_main_prints_header_and_table_and_writes_json(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(bench, "DEFAULT_CONFIGS", TINY)
    monkeypatch.setenv("POOLTOOLS_QUICK", "1")
    out_path = tmp_path / "sub" / "bench.json"
    assert bench.main(["--json", str(out_path)]) == 0
    printed = capsys.readouterr().out
    assert (
        printed.startswith("machine: ") and "median of 3 interleaved runs" in printed
    )  # quick: 3 repeats
    for method, _ in EXPECTED:
        assert method in printed
    data = json.loads(out_path.read_text())
    assert data["header"] in printed
    assert len(data["rows"]) == 2 * len(EXPECTED)
    for row in data["rows"]:
        assert row["ratio"] == pytest.approx(row["time_ms"] / row["baseline_ms"], rel=1e-12)
    assert [p.name for p in out_path.parent.iterdir()] == ["bench.json"]  # no temp file left


def test_bad_repeats_are_refused():
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        run_benchmark(TINY, repeats=0)
