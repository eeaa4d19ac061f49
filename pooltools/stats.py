"""Statistics a learner can read: spread over seeds, paired comparisons, accuracy intervals.

Pure functions (arrays in, numbers out) built on :mod:`scipy.stats`, so notebook 3 can say
which differences between variants are real and which are noise:

- :func:`seed_summary`: mean, sample std, min, max over training seeds, with a t-based 95 %
  interval of the mean (n >= 2);
- :func:`paired_comparison`: two classifiers on the same test images, from their per-image
  correctness vectors: the accuracy difference with a paired, seeded bootstrap interval
  (``scipy.stats.bootstrap``) and an exact McNemar test (``scipy.stats.binomtest`` on the
  images where exactly one of the two is right); :meth:`PairedComparison.sentence` words it;
- :func:`accuracy_ci`: the exact (Clopper-Pearson) binomial interval of one accuracy;
- :func:`prediction_interval`: where one more training seed should land, from a mean over n
  seeds and a (pooled) seed std, to judge a variant trained only once;
- :func:`holm_adjust`: Holm's step-down adjustment of several p-values tested together.

The bootstrap draws a fixed number of resamples from a fixed seed, so the same vectors always
give the same interval.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as _st

__all__ = [
    "seed_summary",
    "paired_comparison",
    "accuracy_ci",
    "prediction_interval",
    "holm_adjust",
    "format_p",
]

N_RESAMPLES = 9999
BOOTSTRAP_SEED = 0


# --------------------------------------------------------------------------------------------
# validation


def _correctness(values: Any, name: str) -> np.ndarray:
    """``values`` as a 1-D bool array; booleans or 0/1 integers only (not scores, not floats)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D vector of per-image correctness, but got shape {arr.shape}"
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty; pass one True/False per test image")
    if arr.dtype == np.bool_:
        return arr
    if np.issubdtype(arr.dtype, np.integer) and np.isin(arr, (0, 1)).all():
        return arr.astype(bool)
    raise TypeError(
        f"{name} must hold booleans (True where the classifier is right), e.g. "
        f"`predictions == labels`, but got dtype {arr.dtype}"
        + (" with values other than 0 and 1" if np.issubdtype(arr.dtype, np.integer) else "")
    )


def _positive_int(value: Any, name: str, meaning: str = "") -> int:
    """``value`` as an int >= 1 (Python or NumPy int, not bool); ``meaning`` goes in the error."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int{meaning}, but got {value!r}")
    return int(value)


def _confidence(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"confidence_level must be in (0, 1), but got {level!r}")
    return float(level)


# --------------------------------------------------------------------------------------------
# spread over seeds


@dataclass(frozen=True)
class SeedSummary:
    """One metric over n training seeds. ``std`` is the sample std (ddof 1) and ``ci`` the
    t-based interval of the mean; both are ``None`` for a single seed (no spread to measure)."""

    n: int
    mean: float
    std: float | None
    min: float
    max: float
    ci: tuple[float, float] | None
    confidence_level: float = 0.95

    def format(self, scale: float = 100.0, digits: int = 2, unit: str = " %") -> str:
        """``84.32 ± 0.15 % (n = 3)`` or ``79.29 % (n = 1)``; values times ``scale``."""
        mean = f"{self.mean * scale:.{digits}f}"
        if self.std is None:
            return f"{mean}{unit} (n = 1)"
        return f"{mean} ± {self.std * scale:.{digits}f}{unit} (n = {self.n})"


def seed_summary(values: Sequence[float], confidence_level: float = 0.95) -> SeedSummary:
    """Mean, sample std, min, max and n of ``values`` (one per seed), and for n >= 2 the
    interval ``mean ± t(1 - alpha/2, n - 1) * std / sqrt(n)`` (``scipy.stats.t``)."""
    level = _confidence(confidence_level)
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"values must be a non-empty 1-D sequence (one number per seed), but got shape "
            f"{arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"values must be finite, but got {arr.tolist()}")
    n, mean = int(arr.size), float(arr.mean())
    std = ci = None
    if n >= 2:
        std = float(arr.std(ddof=1))
        if std == 0:
            ci = (mean, mean)
        else:
            low, high = _st.t.interval(level, n - 1, loc=mean, scale=std / math.sqrt(n))
            ci = (float(low), float(high))
    return SeedSummary(n, mean, std, float(arr.min()), float(arr.max()), ci, level)


def prediction_interval(
    mean: float, std: float, n: int, df: int | None = None, confidence_level: float = 0.95
) -> tuple[float, float]:
    """Interval for one new seed's value, given the mean of ``n`` seeds and the seed std:
    ``mean ± t(1 - alpha/2, df) * std * sqrt(1 + 1/n)`` (``df`` defaults to n - 1; pass the
    pooled degrees of freedom when ``std`` is pooled over several variants). A variant trained
    once is beyond training noise only where its value lies outside this interval."""
    level = _confidence(confidence_level)
    n = _positive_int(n, "n", " (the number of seeds)")
    df = _positive_int(n - 1 if df is None else df, "df", " (n - 1, or pooled)")
    if not (math.isfinite(mean) and math.isfinite(std)) or std < 0:
        raise ValueError(f"mean and std must be finite and std >= 0, but got {mean!r} and {std!r}")
    half = float(_st.t.ppf(0.5 + level / 2, df)) * std * math.sqrt(1 + 1 / n)
    return mean - half, mean + half


def holm_adjust(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values (same keys): sorted ascending, the i-th smallest of m is multiplied
    by m - i (i from 0), made non-decreasing, and capped at 1. Rejecting where the adjusted p is
    below alpha keeps the chance of any false "beats" among the m tests below alpha."""
    if not p_values:
        raise ValueError("p_values must hold at least one p-value")
    bad = {k: p for k, p in p_values.items() if not (isinstance(p, (float, int)) and 0 <= p <= 1)}
    if bad:
        raise ValueError(f"p-values must be numbers in [0, 1], but got {bad}")
    m = len(p_values)
    adjusted, running = {}, 0.0
    for i, (key, p) in enumerate(sorted(p_values.items(), key=lambda kv: kv[1])):
        running = max(running, min(1.0, (m - i) * float(p)))
        adjusted[key] = running
    return {key: adjusted[key] for key in p_values}


# --------------------------------------------------------------------------------------------
# one accuracy


def accuracy_ci(
    correct: Any, n: int | None = None, confidence_level: float = 0.95
) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of an accuracy: ``accuracy_ci(k, n)`` with k right out
    of n, or ``accuracy_ci(correctness_vector)``. Uses ``binomtest(k, n).proportion_ci``."""
    level = _confidence(confidence_level)
    if n is None:
        vec = _correctness(correct, "correct")
        k, n = int(vec.sum()), int(vec.size)
    else:
        if isinstance(correct, bool) or not isinstance(correct, (int, np.integer)):
            raise TypeError(f"k must be an int count of right answers, but got {correct!r}")
        k, n = int(correct), _positive_int(n, "n")
        if not 0 <= k <= n:
            raise ValueError(f"k must be in [0, n] = [0, {n}], but got {k}")
    ci = _st.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


# --------------------------------------------------------------------------------------------
# paired comparison


def format_p(p: float) -> str:
    """``p = 0.0031``, ``p = 0.64``, ``p < 0.001`` (two significant digits)."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


@dataclass(frozen=True)
class PairedComparison:
    """Classifier a against classifier b on the same n images (differences are a minus b).

    ``only_a``/``only_b``: images only a (only b) gets right, the discordant pairs McNemar's
    test looks at; ``p_value``: exact two-sided McNemar p (binomial, p = 1/2, on them);
    ``ci_low``/``ci_high``: the paired bootstrap interval of ``diff``.
    """

    name_a: str
    name_b: str
    n: int
    acc_a: float
    acc_b: float
    diff: float
    ci_low: float
    ci_high: float
    only_a: int
    only_b: int
    p_value: float
    confidence_level: float
    n_resamples: int
    seed: int

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero (the one rule :meth:`sentence` follows)."""
        return self.ci_low > 0 or self.ci_high < 0

    def sentence(self) -> str:
        """The comparison in words, in percentage points (two decimals, as the tables); a
        "beats" only when the interval excludes zero (then the better one comes first),
        otherwise "within noise"."""
        level = f"{self.confidence_level * 100:.0f} %"
        p = format_p(self.p_value)
        if self.significant:
            sign = 1 if self.diff > 0 else -1
            winner, loser = (self.name_a, self.name_b) if sign > 0 else (self.name_b, self.name_a)
            low, high = sorted((sign * self.ci_low * 100, sign * self.ci_high * 100))
            return (
                f"`{winner}` beats `{loser}` by {sign * self.diff * 100:.2f} points "
                f"({level} CI {low:.2f} to {high:.2f}, McNemar {p})"
            )
        return (
            f"`{self.name_a}` and `{self.name_b}` are within noise (difference "
            f"{self.diff * 100:+.2f} points, {level} CI {self.ci_low * 100:+.2f} to "
            f"{self.ci_high * 100:+.2f}, McNemar {p})"
        )


def _rng_kwarg(seed: int) -> dict[str, Any]:
    """scipy >= 1.15 takes ``rng``; older releases ``random_state``."""
    key = "rng" if "rng" in inspect.signature(_st.bootstrap).parameters else "random_state"
    return {key: np.random.default_rng(seed)}


def _diff_of_means(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return a.mean(axis=axis) - b.mean(axis=axis)


def _bootstrap_ci(
    a: np.ndarray, b: np.ndarray, level: float, n_resamples: int, seed: int
) -> tuple[float, float]:
    """Paired BCa bootstrap interval of ``mean(a) - mean(b)``."""
    result = _st.bootstrap(
        (a.astype(float), b.astype(float)),
        _diff_of_means,
        n_resamples=n_resamples,
        batch=min(n_resamples, max(1, 2_000_000 // a.size)),  # about 16 MB at a time
        vectorized=True,
        paired=True,
        confidence_level=level,
        method="BCa",
        **_rng_kwarg(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_comparison(
    correct_a: Any,
    correct_b: Any,
    name_a: str = "a",
    name_b: str = "b",
    *,
    confidence_level: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> PairedComparison:
    """Compare two classifiers from their per-image correctness on the same test images.

    Bootstrap: images are resampled with replacement, the same images for both classifiers
    (``paired=True``), ``n_resamples`` times from ``seed`` (BCa interval). McNemar: exact
    binomial test of ``only_a`` out of ``only_a + only_b`` against 1/2 (p = 1 when the two
    never disagree, and the interval is then exactly 0 to 0).
    """
    a = _correctness(correct_a, "correct_a")
    b = _correctness(correct_b, "correct_b")
    if a.size != b.size:
        raise ValueError(
            f"correct_a and correct_b must cover the same test images, but have lengths "
            f"{a.size} and {b.size}"
        )
    if a.size < 2:
        raise ValueError(f"a paired comparison needs at least 2 images, but got {a.size}")
    level = _confidence(confidence_level)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive int, but got {n_resamples!r}")
    n = int(a.size)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    acc_a, acc_b = float(a.mean()), float(b.mean())
    diff = (only_a - only_b) / n
    if only_a + only_b == 0:  # every resample gives 0; scipy would warn and return nan
        low = high = 0.0
        p_value = 1.0
    else:
        low, high = _bootstrap_ci(a, b, level, n_resamples, seed)
        p_value = float(_st.binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return PairedComparison(
        name_a,
        name_b,
        n,
        acc_a,
        acc_b,
        diff,
        low,
        high,
        only_a,
        only_b,
        p_value,
        level,
        n_resamples,
        seed,
    )
