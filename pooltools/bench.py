"""How fast is max pooling? Our versions against PyTorch's, measured side by side in one run.

``python -m pooltools.bench`` prints one table: for each config, the naive loops, our vectorized
NumPy forward (and forward+backward), ``ScratchMaxPool2d`` and PyTorch on NCHW and channels_last
tensors, each the median of ``repeats`` timed calls after warm-up, with its ratio to PyTorch
NCHW (forward rows to PyTorch's forward, forward+backward rows to PyTorch's forward+backward).
The methods are timed round-robin (one call of each per round), so background load hits all alike.

A notebook calls ``run_benchmark`` and ``format_table``. ``--quick`` (or ``POOLTOOLS_QUICK=1``)
uses 3 repeats instead of 15; ``--json PATH`` also writes the rows as JSON; ``--threads N``
sets PyTorch's thread count first (on a machine shared with other jobs, 1 thread gives steadier
numbers: an OpenMP region waits for its slowest thread, and a descheduled one costs ~10 ms).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pooltools import pooling
from pooltools.atomic import write_json_atomic
from pooltools.config import cpu_name, pick
from pooltools.nn import scratch_max_pool2d

__all__ = [
    "BenchConfig",
    "BenchRow",
    "DEFAULT_CONFIGS",
    "FORWARD",
    "FORWARD_BACKWARD",
    "interleaved_median_ms",
    "run_benchmark",
    "format_table",
    "bench_header",
    "write_json",
    "main",
]

FORWARD, FORWARD_BACKWARD = "forward", "fwd+bwd"
BASELINE = "PyTorch NCHW"


@dataclass(frozen=True)
class BenchConfig:
    """One pooling setting on one input size; the naive loops run on the smaller ``naive_shape``."""

    name: str
    kernel_size: int
    stride: int
    padding: int = 0
    shape: tuple[int, int, int, int] = (64, 32, 32, 32)  # (N, C, H, W), float32
    naive_shape: tuple[int, int, int, int] = (1, 4, 32, 32)


@dataclass(frozen=True)
class BenchRow:
    """One measured line: ``ratio = time_ms / baseline_ms`` (the matching PyTorch NCHW row)."""

    config: str
    method: str
    pass_: str  # FORWARD or FORWARD_BACKWARD
    time_ms: float
    baseline_ms: float
    ratio: float


DEFAULT_CONFIGS = (
    BenchConfig("k2 s2", kernel_size=2, stride=2),
    BenchConfig("k3 s2 p1", kernel_size=3, stride=2, padding=1),
)


def _median_ms(fns: Sequence[Callable[[], object]], repeats: int, warmup: int) -> list[float]:
    """Median wall time in ms of each ``fn()`` over ``repeats`` rounds, after ``warmup`` rounds.

    Interleaved: each round calls every function once, so a burst of load from other processes
    slows all of them alike instead of skewing whichever happened to be running.
    """
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, fn_times in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            fn_times.append(time.perf_counter() - start)
    return [1000.0 * statistics.median(fn_times) for fn_times in times]


def interleaved_median_ms(
    fns: Sequence[Callable[[], object]], repeats: int, warmup: int = 2
) -> list[float]:
    """Median ms of each ``fn()``, timed round-robin as the benchmark does (public for notebooks).

    Use it to compare a few functions on a busy machine: a burst of load hits all of them alike.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, but got {repeats} and {warmup}")
    return _median_ms(fns, repeats, warmup)


def _shape_label(shape: Sequence[int]) -> str:
    return "×".join(str(s) for s in shape)


def _time_config(cfg: BenchConfig, repeats: int, warmup: int) -> list[tuple[str, str, float]]:
    """``(method, pass, ms)`` for every method on one config."""
    k, s, p = cfg.kernel_size, cfg.stride, cfg.padding
    g = torch.Generator().manual_seed(0)
    x = torch.randn(cfg.shape, generator=g)  # (N, C, H, W) float32
    grad = torch.randn(F.max_pool2d(x, k, s, p).shape, generator=g)  # (N, C, oh, ow)
    x_np, grad_np = x.numpy().copy(), grad.numpy().copy()
    small_np = torch.randn(cfg.naive_shape, generator=g).numpy()
    x_cl = x.contiguous(memory_format=torch.channels_last)
    grad_cl = grad.contiguous(memory_format=torch.channels_last)
    x_req, x_cl_req = x.clone().requires_grad_(), x_cl.clone().requires_grad_()

    def numpy_fwd_bwd() -> None:
        _, idx = pooling.max_pool2d(x_np, k, s, p, return_indices=True)
        pooling.max_pool2d_backward(grad_np, idx, x_np.shape)

    def fwd_bwd(pool: Callable, inp: torch.Tensor, g_out: torch.Tensor) -> Callable[[], object]:
        return lambda: torch.autograd.grad(pool(inp, k, s, p), inp, g_out)

    naive_scale = float(np.prod(cfg.shape) / np.prod(cfg.naive_shape))  # per element
    methods = [  # (method, pass, fn, scale)
        (
            f"naive loops (extrapolated from {_shape_label(cfg.naive_shape)})",
            FORWARD,
            lambda: pooling.max_pool2d_naive(small_np, k, s, p),
            naive_scale,
        ),
        ("numpy vectorized", FORWARD, lambda: pooling.max_pool2d(x_np, k, s, p), 1.0),
        ("ScratchMaxPool2d (torch ops)", FORWARD, lambda: scratch_max_pool2d(x, k, s, p), 1.0),
        (BASELINE, FORWARD, lambda: F.max_pool2d(x, k, s, p), 1.0),
        ("PyTorch channels_last", FORWARD, lambda: F.max_pool2d(x_cl, k, s, p), 1.0),
        ("numpy (return_indices) + max_pool2d_backward", FORWARD_BACKWARD, numpy_fwd_bwd, 1.0),
        (
            "ScratchMaxPool2d (torch ops)",
            FORWARD_BACKWARD,
            fwd_bwd(scratch_max_pool2d, x_req, grad),
            1.0,
        ),
        (BASELINE, FORWARD_BACKWARD, fwd_bwd(F.max_pool2d, x_req, grad), 1.0),
        ("PyTorch channels_last", FORWARD_BACKWARD, fwd_bwd(F.max_pool2d, x_cl_req, grad_cl), 1.0),
    ]
    medians = _median_ms([fn for _, _, fn, _ in methods], repeats, warmup)
    return [
        (method, pass_, scale * ms)
        for (method, pass_, _, scale), ms in zip(methods, medians, strict=True)
    ]


def run_benchmark(
    configs: Sequence[BenchConfig] = DEFAULT_CONFIGS, repeats: int = 15, warmup: int = 2
) -> list[BenchRow]:
    """Time every method on every config; ratios against PyTorch NCHW of the same pass."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, but got {repeats} and {warmup}")
    rows = []
    for cfg in configs:
        timings = _time_config(cfg, repeats, warmup)
        baseline = {pass_: ms for method, pass_, ms in timings if method == BASELINE}
        rows += [
            BenchRow(cfg.name, method, pass_, ms, baseline[pass_], ms / baseline[pass_])
            for method, pass_, ms in timings
        ]
    return rows


def bench_header(repeats: int | None = None) -> str:
    """Machine, cores, torch threads and library versions: what produced the numbers."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parts = [
        f"machine: {platform.machine()} {cpu_name()}, {os.cpu_count()} cores ({usable} usable)",
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)",
        f"numpy {np.__version__}",
    ]
    if hasattr(os, "getloadavg"):  # other work on the machine makes every number noisier
        parts.append(f"load avg {os.getloadavg()[0]:.1f} before the run")
    if repeats is not None:
        parts.append(f"median of {repeats} interleaved runs after warm-up")
    return " | ".join(parts)


def format_table(rows: Sequence[BenchRow], configs: Sequence[BenchConfig] | None = None) -> str:
    """The rows as one fixed-width text table (ratio ``×`` PyTorch NCHW of the same pass)."""
    by_name = {cfg.name: cfg for cfg in (configs or DEFAULT_CONFIGS)}
    names = list(dict.fromkeys(row.config for row in rows))
    labels = [f"{n} on {_shape_label(by_name[n].shape)}" if n in by_name else n for n in names]
    cfg_w = max(len("config"), *(len(label) for label in labels))
    method_w = max(len("method"), *(len(row.method) for row in rows))
    head = f"{'config':<{cfg_w}}  {'method':<{method_w}}  {'pass':<7}  {'time (ms)':>10}  "
    head += f"{'vs torch NCHW':>13}"
    lines = [head, "-" * len(head)]
    for name, label in zip(names, labels, strict=True):
        for row in (r for r in rows if r.config == name):
            lines.append(
                f"{label:<{cfg_w}}  {row.method:<{method_w}}  {row.pass_:<7}  "
                f"{row.time_ms:>10.3f}  {row.ratio:>12.2f}×"
            )
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def write_json(path: str | os.PathLike, rows: Sequence[BenchRow], header: str) -> None:
    """Write ``{"header": ..., "rows": [...]}`` atomically (``pooltools.atomic``)."""
    write_json_atomic(path, {"header": header, "rows": [asdict(row) for row in rows]})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pooltools.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="3 repeats instead of 15 (also with POOLTOOLS_QUICK=1)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per row")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads(N) first (default: leave torch's choice)",
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else pick(15, 3))
    header = bench_header(repeats)
    rows = run_benchmark(DEFAULT_CONFIGS, repeats=repeats)
    print(header)
    print(format_table(rows))
    if args.json:
        write_json(args.json, rows, header)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
