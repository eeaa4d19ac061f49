"""pooltools.check.nb2: every check passes on notebook 2's worked solution and fails on wrong
answers (and on the student stub), printing one PASS/FAIL line."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pooltools.check import nb2


def stub(*args, **kwargs):
    raise NotImplementedError("your turn")


# ----------------------------------------------------------------------------- worked solutions
# The same code as the solution cells of notebooks/02_pooling_from_scratch.ipynb.
def relu_max(a, b):
    return a + F.relu(b - a)


def relu_max_pool(t):
    top = relu_max(t[..., 0::2, 0::2], t[..., 0::2, 1::2])
    bottom = relu_max(t[..., 1::2, 0::2], t[..., 1::2, 1::2])
    return relu_max(top, bottom)


def is_linear(f):
    u, v = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    additive = torch.allclose(f(u + v), f(u) + f(v), atol=1e-5)
    odd = torch.allclose(f(-u), -f(u), atol=1e-5)
    return additive, odd


def l2_pool(t, k):
    return (F.avg_pool2d(t**2, k) * k * k).sqrt()


def softmax_pool(t, k, temperature):
    n, c, h, w = t.shape
    windows = F.unfold(t, k, stride=k).reshape(n, c, k * k, -1)
    weights = torch.softmax(windows / temperature, dim=2)
    return (weights * windows).sum(2).reshape(n, c, h // k, w // k)


def adaptive_avg_pool1d(t, out):
    length = t.shape[-1]
    means = []
    for i in range(out):
        start, end = (i * length) // out, -(-(i + 1) * length // out)
        means.append(t[..., start:end].mean(-1))
    return torch.stack(means, dim=-1)


SOLUTIONS = [
    (nb2.check_relu_max_pool, relu_max_pool),
    (nb2.check_linearity_test, is_linear),
    (nb2.check_l2_pool, l2_pool),
    (nb2.check_softmax_pool, softmax_pool),
    (nb2.check_adaptive_avg_pool1d, adaptive_avg_pool1d),
]


# ----------------------------------------------------------------------------- wrong answers
def relu_only(t):  # relu(b) instead of a + relu(b - a): wrong on negative values
    top = F.relu(t[..., 0::2, 1::2])
    return torch.maximum(top, F.relu(t[..., 1::2, 1::2]))


def exact_equality(f):  # == instead of allclose: rounding makes the conv "non-linear"
    u, v = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    return bool(torch.equal(f(u + v), f(u) + f(v))), bool(torch.equal(f(-u), -f(u)))


def l2_mean_of_squares(t, k):  # forgot the k*k: the root of the mean of squares
    return F.avg_pool2d(t**2, k).sqrt()


def softmax_no_temperature(t, k, temperature):
    return softmax_pool(t, k, 1.0)


def adaptive_floor_only(t, out):  # windows end at floor((i + 1) * L / out): no overlap
    length = t.shape[-1]
    cuts = [(i * length) // out for i in range(out + 1)]
    return torch.stack(
        [t[..., a : max(b, a + 1)].mean(-1) for a, b in zip(cuts[:-1], cuts[1:], strict=True)], -1
    )


WRONG = [
    (nb2.check_relu_max_pool, relu_only),
    (nb2.check_relu_max_pool, lambda t: F.avg_pool2d(t, 2)),
    (nb2.check_linearity_test, lambda f: (True, True)),
    (nb2.check_linearity_test, exact_equality),
    (nb2.check_linearity_test, lambda f: None),
    (nb2.check_l2_pool, l2_mean_of_squares),
    (nb2.check_l2_pool, lambda t, k: F.lp_pool2d(t, 2, k).numpy()),  # not a tensor
    (nb2.check_softmax_pool, softmax_no_temperature),
    (nb2.check_adaptive_avg_pool1d, adaptive_floor_only),
    (nb2.check_adaptive_avg_pool1d, lambda t, out: F.adaptive_max_pool1d(t, out)),
]


@pytest.mark.parametrize(("check", "answer"), SOLUTIONS, ids=lambda v: getattr(v, "__name__", ""))
def test_check_passes_on_the_worked_solution(check, answer, capsys):
    torch.manual_seed(0)
    result = check(answer)
    assert result.passed, result.line()
    assert capsys.readouterr().out.strip() == result.line()
    assert result.line().startswith("[PASS]")


@pytest.mark.parametrize(("check", "answer"), WRONG)
def test_check_fails_on_a_wrong_answer(check, answer, capsys):
    torch.manual_seed(0)
    result = check(answer)
    assert not result.passed
    out = capsys.readouterr().out.strip()
    assert out == result.line() and out.startswith("[FAIL]") and "Hint:" in out


@pytest.mark.parametrize(("check", "_"), SOLUTIONS)
def test_check_fails_on_the_student_stub(check, _, capsys):
    result = check(stub)
    assert not result.passed
    assert "NotImplementedError: your turn" in capsys.readouterr().out
