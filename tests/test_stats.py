"""pooltools.stats against answers known independently: hand formulas, exact binomial sums with
math.comb, the Clopper-Pearson beta quantiles, a t table, and constructed classifiers whose true
difference is known."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats as st

from pooltools.stats import (
    accuracy_ci,
    format_p,
    holm_adjust,
    paired_comparison,
    prediction_interval,
    seed_summary,
)

FAST = {"n_resamples": 999}  # tests use fewer resamples than the default 9999


def _table(both: int, only_a: int, only_b: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Correctness vectors with the given 2x2 table (a right/b right, ...), shuffled."""
    a = np.array([1] * both + [1] * only_a + [0] * only_b + [0] * neither, dtype=bool)
    b = np.array([1] * both + [0] * only_a + [1] * only_b + [0] * neither, dtype=bool)
    order = np.random.default_rng(7).permutation(a.size)
    return a[order], b[order]


def _exact_mcnemar(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p by hand: twice the smaller binomial tail, at most 1."""
    n, k = only_a + only_b, min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


# --------------------------------------------------------------------------------------------
# seed_summary


def test_seed_summary_matches_the_hand_formulas():
    values = [0.80, 0.82, 0.87]
    s = seed_summary(values)
    mean = sum(values) / 3
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (3 - 1))
    half = st.t.ppf(0.975, 2) * std / math.sqrt(3)
    assert (s.n, s.min, s.max) == (3, 0.80, 0.87)
    assert s.mean == pytest.approx(mean, abs=1e-15)
    assert s.std == pytest.approx(std, rel=1e-12)
    assert s.ci == pytest.approx((mean - half, mean + half), rel=1e-12)
    # t(0.975, 2 df) = 4.303 in every printed t table
    assert (s.ci[1] - s.mean) / (std / math.sqrt(3)) == pytest.approx(4.303, abs=5e-4)


def test_seed_summary_other_level_and_single_seed():
    s = seed_summary([1.0, 2.0, 3.0, 4.0], confidence_level=0.9)
    std = math.sqrt((1.5**2 + 0.5**2) * 2 / 3)
    assert s.ci[1] - s.mean == pytest.approx(2.353363 * std / 2, rel=1e-6)  # t(0.95, 3 df)
    one = seed_summary([0.7929])
    assert (one.n, one.mean, one.std, one.ci) == (1, 0.7929, None, None)
    assert one.format() == "79.29 % (n = 1)"
    assert seed_summary([0.8432, 0.8449]).format() == "84.41 ± 0.12 % (n = 2)"
    assert seed_summary([0.5, 0.5]).ci == (0.5, 0.5)


@pytest.mark.parametrize(
    "values, match",
    [([], "non-empty"), ([[0.1, 0.2]], "1-D"), ([0.1, float("nan")], "finite")],
)
def test_seed_summary_rejects_bad_input(values, match):
    with pytest.raises(ValueError, match=match):
        seed_summary(values)


# --------------------------------------------------------------------------------------------
# accuracy_ci


@pytest.mark.parametrize("k, n", [(8432, 10000), (3, 10), (50, 51)])
def test_accuracy_ci_is_clopper_pearson(k, n):
    low, high = accuracy_ci(k, n)
    assert low == pytest.approx(st.beta.ppf(0.025, k, n - k + 1), rel=1e-6)
    assert high == pytest.approx(st.beta.ppf(0.975, k + 1, n - k), rel=1e-6)


def test_accuracy_ci_edges_and_vectors():
    # k = 0: the upper end solves (1 - p)^n = 0.025; k = n: the lower end solves p^n = 0.025
    assert accuracy_ci(0, 10) == pytest.approx((0.0, 1 - 0.025 ** (1 / 10)), rel=1e-6)
    assert accuracy_ci(10, 10) == pytest.approx((0.025 ** (1 / 10), 1.0), rel=1e-6)
    vec = np.array([True] * 84 + [False] * 16)
    assert accuracy_ci(vec) == accuracy_ci(84, 100)
    # the claim: at 84 % on 10,000 images the 95 % interval is about +-0.7 points
    low, high = accuracy_ci(8400, 10000)
    assert (high - low) / 2 == pytest.approx(1.96 * math.sqrt(0.84 * 0.16 / 10000), rel=0.02)


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((11, 10), ValueError, r"\[0, n\]"),
        ((1, 0), ValueError, "positive int"),
        ((0.5, 10), TypeError, "int count"),
        (([],), ValueError, "empty"),
        (([0.2, 0.9],), TypeError, "booleans"),
    ],
)
def test_accuracy_ci_rejects_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        accuracy_ci(*args)


# --------------------------------------------------------------------------------------------
# paired_comparison: McNemar


@pytest.mark.parametrize(
    "both, only_a, only_b, neither", [(40, 7, 1, 2), (10, 3, 3, 4), (0, 0, 5, 5), (900, 60, 30, 10)]
)
def test_mcnemar_p_is_the_exact_binomial_sum(both, only_a, only_b, neither):
    a, b = _table(both, only_a, only_b, neither)
    r = paired_comparison(a, b, **FAST)
    assert (r.only_a, r.only_b, r.n) == (only_a, only_b, both + only_a + only_b + neither)
    assert r.acc_a == (both + only_a) / r.n and r.acc_b == (both + only_b) / r.n
    assert r.diff == pytest.approx(r.acc_a - r.acc_b, abs=1e-15)
    assert r.p_value == pytest.approx(_exact_mcnemar(only_a, only_b), rel=1e-9)


def test_mcnemar_on_a_hand_countable_table():
    # 7 against 1 discordant: p = 2 * (C(8,0) + C(8,1)) / 2^8 = 18 / 256
    a, b = _table(40, 7, 1, 2)
    assert paired_comparison(a, b, **FAST).p_value == pytest.approx(18 / 256, rel=1e-12)


def test_concordant_classifiers_differ_by_exactly_zero():
    a, _ = _table(30, 5, 5, 10)
    r = paired_comparison(a, a.copy(), "x", "y", **FAST)
    assert (r.diff, r.ci_low, r.ci_high, r.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert not r.significant


# --------------------------------------------------------------------------------------------
# paired_comparison: bootstrap


def test_bootstrap_ci_of_equally_good_classifiers_contains_zero_and_has_the_normal_width():
    # same accuracy (600 discordant images, 300 each way): true difference 0
    a, b = _table(7000, 300, 300, 2400)
    r = paired_comparison(a, b, **FAST)
    assert r.diff == 0.0 and r.ci_low < 0 < r.ci_high
    # the normal approximation of a paired difference: se = sqrt(discordant) / n
    half = 1.96 * math.sqrt(600) / 10000
    assert r.ci_low == pytest.approx(-half, rel=0.1)
    assert r.ci_high == pytest.approx(half, rel=0.1)
    assert "within noise" in r.sentence()


def test_bootstrap_ci_of_a_clearly_better_classifier_excludes_zero():
    # a is right on 2,000 more of 10,000 images: true difference +20 points
    a, b = _table(7000, 2100, 100, 800)
    r = paired_comparison(a, b, "convpool", "base", **FAST)
    assert 0 < r.ci_low < 0.20 < r.ci_high
    se = math.sqrt((2100 + 100) - 2000**2 / 10000) / 10000
    assert r.ci_high - r.ci_low == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert r.significant and r.p_value < 1e-100


def test_bootstrap_is_seeded_and_the_seed_matters():
    a, b = _table(700, 40, 25, 235)
    first, again = paired_comparison(a, b, **FAST), paired_comparison(a, b, **FAST)
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    other = paired_comparison(a, b, seed=1, **FAST)
    assert (other.ci_low, other.ci_high) != (first.ci_low, first.ci_high)


def test_result_is_frozen():
    a, b = _table(10, 3, 1, 2)
    r = paired_comparison(a, b, **FAST)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.diff = 1.0  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# wording


def _result(diff: float, low: float, high: float, p: float):
    a, b = _table(10, 3, 1, 2)
    base = paired_comparison(a, b, "convpool", "base", **FAST)
    return dataclasses.replace(base, diff=diff, ci_low=low, ci_high=high, p_value=p)


def test_sentence_says_beats_only_when_the_interval_excludes_zero():
    assert _result(0.011, 0.004, 0.018, 0.003).sentence() == (
        "`convpool` beats `base` by 1.10 points (95 % CI 0.40 to 1.80, McNemar p = 0.003)"
    )
    assert _result(0.002, -0.005, 0.009, 0.6).sentence() == (
        "`convpool` and `base` are within noise (difference +0.20 points, "
        "95 % CI -0.50 to +0.90, McNemar p = 0.6)"
    )
    # an interval that touches zero does not exclude it
    assert "within noise" in _result(0.01, 0.0, 0.02, 0.04).sentence()


def test_sentence_puts_the_better_classifier_first():
    text = _result(-0.05, -0.057, -0.043, 1e-40).sentence()
    assert text == "`base` beats `convpool` by 5.00 points (95 % CI 4.30 to 5.70, McNemar p < 0.001)"


def test_format_p():
    assert [format_p(p) for p in (0.64, 0.0031, 0.00099, 1.0)] == [
        "p = 0.64",
        "p = 0.0031",
        "p < 0.001",
        "p = 1",
    ]


# --------------------------------------------------------------------------------------------
# validation


@pytest.mark.parametrize(
    "a, b, error, match",
    [
        ([True, False, True], [True, False], ValueError, "same test images.*3 and 2"),
        ([0.9, 0.1], [1.0, 0.0], TypeError, "booleans.*float64"),
        ([0, 2], [1, 0], TypeError, "other than 0 and 1"),
        ([], [], ValueError, "empty"),
        ([[True, False]], [[True, False]], ValueError, "1-D"),
        ([True], [False], ValueError, "at least 2 images"),
    ],
)
def test_paired_comparison_rejects_bad_input(a, b, error, match):
    with pytest.raises(error, match=match):
        paired_comparison(a, b, **FAST)


def test_paired_comparison_accepts_zero_one_integers():
    a, b = _table(10, 3, 1, 2)
    as_bool = paired_comparison(a, b, **FAST)
    as_int = paired_comparison(a.astype(int), b.astype(np.int64), **FAST)
    assert as_bool == as_int
    with pytest.raises(ValueError, match="confidence_level"):
        paired_comparison(a, b, confidence_level=95)
    with pytest.raises(ValueError, match="n_resamples"):
        paired_comparison(a, b, n_resamples=0)


# --------------------------------------------------------------------------------------------
# prediction_interval and holm_adjust


def test_prediction_interval_is_the_t_formula():
    # n = 3, df = 2: t(0.975, 2) = 4.303 (t table); half width 4.303 * 0.5 * sqrt(4/3)
    low, high = prediction_interval(10.0, 0.5, 3)
    half = 4.302652729911275 * 0.5 * math.sqrt(4 / 3)
    assert (low, high) == pytest.approx((10.0 - half, 10.0 + half), rel=1e-9)
    # a pooled std with more degrees of freedom narrows it: t(0.975, 12) = 2.179
    low12, high12 = prediction_interval(10.0, 0.5, 3, df=12)
    assert high12 - 10.0 == pytest.approx(2.178812829663418 * 0.5 * math.sqrt(4 / 3), rel=1e-9)
    assert high12 < high


def test_prediction_interval_covers_new_draws_at_its_level():
    # simulated seeds: one new draw falls inside the interval from 3 earlier draws ~95 % of the time
    rng = np.random.default_rng(0)
    draws = rng.normal(0.0, 1.0, size=(20000, 4))
    inside = 0
    for row in draws:
        low, high = prediction_interval(row[:3].mean(), row[:3].std(ddof=1), 3)
        inside += low <= row[3] <= high
    assert inside / len(draws) == pytest.approx(0.95, abs=0.01)


@pytest.mark.parametrize(
    ("args", "match"),
    [((1.0, 0.1, 0), "n must be a positive int"), ((1.0, 0.1, 3, 0), "df must be a positive int"),
     ((1.0, -0.1, 3), "std >= 0"), ((float("nan"), 0.1, 3), "finite")],
)
def test_prediction_interval_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        prediction_interval(*args)


def test_holm_on_a_hand_computed_example():
    # sorted 0.005, 0.01, 0.03, 0.04 with m = 4: 4*0.005 = 0.02, 3*0.01 = 0.03, 2*0.03 = 0.06,
    # 1*0.04 = 0.04 -> raised to 0.06 to stay non-decreasing
    adjusted = holm_adjust({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005})
    assert adjusted == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06, "d": 0.02})
    assert list(adjusted) == ["a", "b", "c", "d"]


def test_holm_caps_at_one_and_lies_between_raw_and_bonferroni():
    rng = np.random.default_rng(1)
    raw = {str(i): float(p) for i, p in enumerate(rng.uniform(0, 0.5, size=7))}
    adjusted = holm_adjust(raw)
    for key, p in raw.items():
        assert p <= adjusted[key] <= min(1.0, 7 * p)
    assert holm_adjust({"x": 0.6, "y": 0.7}) == {"x": 1.0, "y": 1.0}


@pytest.mark.parametrize("bad", [{}, {"a": 1.5}, {"a": -0.1}, {"a": "0.1"}])
def test_holm_rejects_bad_input(bad):
    with pytest.raises(ValueError, match="p-value"):
        holm_adjust(bad)
