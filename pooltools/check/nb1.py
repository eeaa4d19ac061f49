"""Checks for notebook 1's exercises, each against PyTorch itself.

Every function takes the learner's function, runs it on cases the learner did not see, and
prints one PASS/FAIL line (see :mod:`pooltools.check.core`); it never raises on a wrong answer.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

from pooltools.check.core import CheckResult, report, run_answer

__all__ = ["check_output_size", "check_max_pool_2x2", "check_lossy_sizes", "check_avg_pool_grad"]


def _torch_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    return int(F.max_pool2d(torch.zeros(1, 1, size, size), kernel_size, stride, padding).shape[-1])


def check_output_size(output_size: Callable[[int, int, int, int], Any]) -> CheckResult:
    """Exercise 1: ``output_size(size, kernel_size, stride, padding)`` equals PyTorch's output
    length (floor mode, dilation 1), first on 32×32 with kernel 3, stride 2, padding 1, then on
    every setting PyTorch accepts for sizes 1..12, kernels 1..4, strides 1..3."""
    name = "Exercise 1 (output size)"
    hint = "PyTorch's formula is in section 4: mind the floor (use //) and the + 1 at the end"
    cases = [(32, 3, 2, 1)] + [
        (n, k, s, p)
        for n, k, s, p in itertools.product(range(1, 13), range(1, 5), range(1, 4), range(3))
        if p <= k // 2 and n + 2 * p >= k
    ]
    for n, k, s, p in cases:
        got, failed = run_answer(name, output_size, n, k, s, p, hint=hint)
        if failed is not None:  # a CheckResult is falsy when it failed
            return failed
        want = _torch_size(n, k, s, p)
        if not isinstance(got, int) or isinstance(got, bool) or got != want:
            return report(name, False, f"output_size({n}, {k}, {s}, {p}) gave {got!r}, PyTorch "
                          f"gives {want}", hint)  # fmt: skip
    return report(name, True, f"32×32 → {_torch_size(32, 3, 2, 1)}×{_torch_size(32, 3, 2, 1)}, "
                  f"and all {len(cases)} settings agree with PyTorch")  # fmt: skip


@contextlib.contextmanager
def _no_builtin_pooling() -> Iterator[None]:
    """Make PyTorch's own max pooling raise while the learner's function runs."""

    def refuse(*args: Any, **kwargs: Any):
        raise RuntimeError("this exercise asks for reshape and amax, not PyTorch's max pooling")

    saved = {name: getattr(F, name) for name in ("max_pool2d", "max_pool2d_with_indices")}
    saved_torch = torch.max_pool2d
    try:
        for name in saved:
            setattr(F, name, refuse)
        torch.max_pool2d = refuse
        yield
    finally:
        for name, fn in saved.items():
            setattr(F, name, fn)
        torch.max_pool2d = saved_torch


def check_max_pool_2x2(max_pool_2x2: Callable[[torch.Tensor], Any]) -> CheckResult:
    """Exercise 2: ``max_pool_2x2(t)`` equals ``F.max_pool2d(t, 2)`` on random (N, C, H, W)
    batches of several shapes (even H and W), without calling PyTorch's max pooling."""
    name = "Exercise 2 (max pooling with reshape + amax)"
    hint = ("reshape so that each 2×2 block gets two axes of its own (one for its rows, one for "
            "its columns), then take amax over exactly those two")  # fmt: skip
    gen = torch.Generator().manual_seed(1)
    for shape in [(1, 1, 4, 4), (4, 3, 8, 10), (2, 5, 6, 2), (3, 2, 12, 8)]:
        t = torch.randn(shape, generator=gen)
        want = F.max_pool2d(t, 2)
        with _no_builtin_pooling():
            got, failed = run_answer(name, max_pool_2x2, t.clone(), hint=hint)
        if failed is not None:  # a CheckResult is falsy when it failed
            return failed
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            shape_got = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            return report(name, False, f"on input {shape} you returned {shape_got}, expected "
                          f"{tuple(want.shape)}", hint)  # fmt: skip
        if not torch.equal(got, want):
            bad = int((got != want).sum())
            return report(name, False, f"on input {shape}, {bad} of {want.numel()} values differ "
                          "from F.max_pool2d", hint)  # fmt: skip
    return report(name, True, "equal to F.max_pool2d on 4 random batches of different shapes")


def _lossy_by_experiment(sizes, kernel_size: int, stride: int) -> list[int]:
    """Sizes whose last row no window sees: change it and PyTorch's output does not move."""
    lossy = []
    for n in sizes:
        x = torch.rand(1, 1, n, n)
        changed = x.clone()
        changed[..., -1, :] = 10.0
        if torch.equal(F.max_pool2d(x, kernel_size, stride), F.max_pool2d(changed, kernel_size,
                                                                          stride)):  # fmt: skip
            lossy.append(n)
    return lossy


def check_lossy_sizes(lossy_sizes: Callable[..., Any]) -> CheckResult:
    """Exercise 3: ``lossy_sizes(kernel_size, stride, sizes)`` lists the sizes whose last row
    floor mode never looks at; compared with an experiment on PyTorch for kernel 2, stride 2 on
    sizes 2..12, and for two settings the exercise did not ask about (so a hard-coded rule
    fails)."""
    name = "Exercise 3 (sizes that lose a row)"
    hint = ("a row is lost when the last window does not end on the last row: compare "
            "size − kernel_size with the stride (shapes.uncovered counts uncovered rows)")  # fmt: skip
    for k, s, sizes in [(2, 2, range(2, 13)), (3, 2, range(3, 14)), (2, 3, range(2, 14))]:
        got, failed = run_answer(name, lossy_sizes, k, s, sizes, hint=hint)
        if failed is not None:  # a CheckResult is falsy when it failed
            return failed
        want = _lossy_by_experiment(sizes, k, s)
        try:
            got_list = sorted(int(v) for v in got)
        except TypeError:
            return report(name, False, f"expected a list of sizes, got {type(got).__name__}", hint)
        if got_list != want:
            return report(name, False, f"kernel {k}, stride {s}: you listed {got_list}, the "
                          f"experiment finds {want}", hint)  # fmt: skip
    want = _lossy_by_experiment(range(2, 13), 2, 2)
    return report(name, True, f"kernel 2, stride 2 loses a row at sizes {want} (the odd ones); "
                  "also right for kernel 3 / stride 2 and kernel 2 / stride 3")  # fmt: skip


def check_avg_pool_grad(avg_pool_input_grad: Callable[..., Any]) -> CheckResult:
    """Exercise 4: ``avg_pool_input_grad(x, grad_out)`` is the gradient that reaches ``x``
    (1, 1, H, W) when ``grad_out`` is sent back through ``F.avg_pool2d(x, 2)``; compared with
    PyTorch's autograd on the notebook's 4×4 matrix and on a random 6×8 one."""
    name = "Exercise 4 (average-pooling gradient)"
    hint = ("let autograd do it: a copy of x that requires grad, F.avg_pool2d, .backward(grad_out), "
            "then read the copy's .grad")  # fmt: skip
    gen = torch.Generator().manual_seed(4)
    x4 = torch.tensor([[1., 3., 2., 1.], [4., 6., 5., 0.], [3., 1., 1., 2.], [0., 2., 4., 3.]])
    cases = [(x4[None, None], torch.tensor([[[[10., 20.], [30., 40.]]]])),
             (torch.randn(1, 1, 6, 8, generator=gen), torch.randn(1, 1, 3, 4, generator=gen))]
    for x, g in cases:
        leaf = x.clone().requires_grad_(True)
        F.avg_pool2d(leaf, 2).backward(g)
        want = leaf.grad
        got, failed = run_answer(name, avg_pool_input_grad, x.clone(), g.clone(), hint=hint)
        if failed is not None:  # a CheckResult is falsy when it failed
            return failed
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            return report(name, False, f"expected a tensor of shape {tuple(want.shape)}, got "
                          f"{getattr(got, 'shape', type(got).__name__)}", hint)  # fmt: skip
        if not torch.allclose(got.detach(), want, atol=1e-6):
            return report(name, False, "your gradient differs from PyTorch's autograd", hint)
    return report(name, True, "matches autograd: unlike max pooling, every input of a window gets "
                  "a quarter of its gradient (10 → 2.5 each)")  # fmt: skip
