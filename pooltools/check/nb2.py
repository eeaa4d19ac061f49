"""Checks for notebook 2's exercises (pooling from scratch), one function per exercise.

Each runs the learner's answer on seeded inputs, compares it with PyTorch or with a reference
computed here, prints one PASS/FAIL line and returns the :class:`CheckResult`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from pooltools.check.core import CheckResult, report, run_answer

__all__ = [
    "check_relu_max_pool",
    "check_linearity_test",
    "check_l2_pool",
    "check_softmax_pool",
    "check_adaptive_avg_pool1d",
]


def _inputs(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _mismatch(got: object, expected: torch.Tensor, atol: float = 1e-5) -> str | None:
    """What is wrong with ``got`` against ``expected`` (type, shape, values), or None."""
    if not isinstance(got, torch.Tensor):
        return f"expected a torch.Tensor, got {type(got).__name__}"
    if got.shape != expected.shape:
        return f"shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    if not torch.allclose(got.double(), expected.double(), atol=atol, rtol=1e-5):
        error = (got.double() - expected.double()).abs().max().item()
        return f"values differ from the reference by up to {error:.3g}"
    return None


def check_relu_max_pool(relu_max_pool: Callable[[torch.Tensor], torch.Tensor]) -> CheckResult:
    """Exercise 1: 2×2/2 max pooling from pairwise ``a + relu(b − a)``, against F.max_pool2d."""
    name = "Exercise 1 (max pooling from ReLUs)"
    hint = "pair the four taps t[..., 0::2, 0::2], t[..., 0::2, 1::2], ... with relu_max, twice"
    for seed, shape in enumerate([(2, 3, 8, 8), (1, 1, 4, 6), (3, 2, 6, 4)]):
        t = _inputs(seed, *shape) - 2.0  # mostly negative: zero padding or relu(x) alone fails
        got, failed = run_answer(name, relu_max_pool, t.clone(), hint=hint)
        if failed is not None:
            return failed
        wrong = _mismatch(got, F.max_pool2d(t, 2))
        if wrong:
            return report(name, False, f"{wrong} (input {shape})", hint)
    return report(name, True, "equal to F.max_pool2d (to rounding) on 3 inputs, negatives included")


def check_linearity_test(
    is_linear: Callable[[Callable[[torch.Tensor], torch.Tensor]], tuple[bool, bool]],
) -> CheckResult:
    """Exercise 2: ``is_linear(f) -> (additive, odd)`` judged on functions of known behaviour."""
    name = "Exercise 2 (is it linear?)"
    hint = (
        "draw random u and v, compare f(u + v) with f(u) + f(v) and f(-u) with -f(u) using "
        "torch.allclose (exact == fails on rounding)"
    )
    conv = torch.nn.Conv2d(3, 3, 2, stride=2, bias=False)
    torch.nn.init.normal_(conv.weight, generator=torch.Generator().manual_seed(0))
    cases = {  # name: (function, additive, odd), each fact true for every input
        "a random conv": (conv, True, True),
        "average pooling": (lambda t: F.avg_pool2d(t, 2), True, True),
        "max pooling": (lambda t: F.max_pool2d(t, 2), False, False),
        "x ** 3 (odd, not additive)": (lambda t: t**3, False, True),
        "x + 1 (neither)": (lambda t: t + 1, False, False),
    }
    for label, (f, additive, odd) in cases.items():
        with torch.no_grad():
            got, failed = run_answer(name, is_linear, f, hint=hint)
        if failed is not None:
            return failed
        if not (isinstance(got, tuple) and len(got) == 2):
            return report(name, False, f"expected a pair (additive, odd), got {got!r}", hint)
        if (bool(got[0]), bool(got[1])) != (additive, odd):
            message = f"for {label} you said {tuple(map(bool, got))}, but it is {(additive, odd)}"
            return report(name, False, message, hint)
    return report(name, True, f"right on all {len(cases)} functions (conv, pools, x³, x + 1)")


def check_l2_pool(l2_pool: Callable[[torch.Tensor, int], torch.Tensor]) -> CheckResult:
    """Exercise 3a: ``l2_pool(t, k)`` = sqrt of each k×k window's sum of squares."""
    name = "Exercise 3a (L2 pooling)"
    hint = "F.avg_pool2d(t ** 2, k) is the mean of squares; multiply by k * k before the sqrt"
    for seed, (shape, k) in enumerate([((2, 3, 8, 8), 2), ((1, 2, 9, 6), 3)]):
        t = _inputs(seed, *shape)  # negative values too: L2 pooling squares them
        got, failed = run_answer(name, l2_pool, t.clone(), k, hint=hint)
        if failed is not None:
            return failed
        wrong = _mismatch(got, F.lp_pool2d(t, norm_type=2, kernel_size=k))
        if wrong:
            return report(name, False, f"{wrong} (k = {k})", hint)
    return report(name, True, "equal to F.lp_pool2d(norm_type=2) for k = 2 and 3")


def _softmax_pool_reference(t: torch.Tensor, k: int, temperature: float) -> torch.Tensor:
    """Independent reference: loops over windows, in float64."""
    n, c, h, w = t.shape
    out = torch.empty(n, c, h // k, w // k, dtype=torch.float64)
    for i in range(h // k):
        for j in range(w // k):
            window = t[:, :, i * k : (i + 1) * k, j * k : (j + 1) * k].double().flatten(2)
            out[:, :, i, j] = (torch.softmax(window / temperature, dim=2) * window).sum(2)
    return out


def check_softmax_pool(
    softmax_pool: Callable[[torch.Tensor, int, float], torch.Tensor],
) -> CheckResult:
    """Exercise 3b: ``softmax_pool(t, k, temperature)`` = Σ softmax(x/T)·x over each window."""
    name = "Exercise 3b (softmax pooling)"
    hint = "F.unfold(t, k, stride=k) gives each window as a column; softmax over the k*k taps"
    t = _inputs(0, 2, 3, 8, 8)
    for k, temperature in [(2, 1.0), (2, 0.3), (4, 5.0)]:
        got, failed = run_answer(name, softmax_pool, t.clone(), k, temperature, hint=hint)
        if failed is not None:
            return failed
        wrong = _mismatch(got, _softmax_pool_reference(t, k, temperature), atol=1e-4)
        if wrong:
            return report(name, False, f"{wrong} (k = {k}, T = {temperature})", hint)
    return report(name, True, "equal to a loop-over-windows reference for 3 (k, T) settings")


def check_adaptive_avg_pool1d(
    adaptive_avg_pool1d: Callable[[torch.Tensor, int], torch.Tensor],
) -> CheckResult:
    """Exercise 4: ``adaptive_avg_pool1d(t, out)`` on (N, C, L), against F.adaptive_avg_pool1d."""
    name = "Exercise 4 (adaptive_avg_pool1d)"
    hint = (
        "window i runs from floor(i * L / out) to ceil((i + 1) * L / out): with integers, "
        "(i * L) // out and -(-(i + 1) * L // out)"
    )
    sizes = [(14, 4), (12, 4), (5, 3), (7, 7), (3, 5), (10, 1), (9, 2)]
    for seed, (length, out) in enumerate(sizes):
        t = _inputs(seed, 2, 3, length)
        got, failed = run_answer(name, adaptive_avg_pool1d, t.clone(), out, hint=hint)
        if failed is not None:
            return failed
        wrong = _mismatch(got, F.adaptive_avg_pool1d(t, out))
        if wrong:
            return report(name, False, f"{wrong} (length {length} -> {out})", hint)
    return report(name, True, f"equal to F.adaptive_avg_pool1d on {len(sizes)} length/output pairs")
