"""Seed statistics shared by a study's report and `percae probe`: the mean with its Student-t
95% interval, and the paired ratio of two results that claims a winner only beyond seed noise."""

from __future__ import annotations

import math

import numpy as np


def mean_interval(values, confidence: float = 0.95) -> tuple[float, float | None]:
    """The mean of `values` and the half-width of its Student-t confidence interval
    (None for fewer than two values: one run says nothing about seed noise)."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float(v.mean()), None
    sem = v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean()), float(stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * sem)


def paired_ratio(a: list, b: list, a_name: str, b_name: str, lower_is_better: bool) -> dict | None:
    """a / b per seed (each pair from the same seed and data), its mean and 95% interval, and a
    verdict that names a winner only when the interval excludes 1; None without a pair."""
    ratios = [x / y for x, y in zip(a, b) if x is not None and y is not None and y != 0]
    if not ratios:
        return None
    mean, half = mean_interval(ratios)
    if half is None:
        verdict = (
            "one seed: whether this difference exceeds seed noise is unknown (run with --seeds 3 "
            "or more)"
        )
    else:
        low, high = mean - half, mean + half
        a_better = high < 1 if lower_is_better else low > 1
        b_better = low > 1 if lower_is_better else high < 1
        verdict = (
            f"{a_name} beats {b_name} beyond seed noise"
            if a_better
            else f"{b_name} beats {a_name} beyond seed noise"
            if b_better
            else "the difference is within seed noise"
        )
    return {
        "ratio": mean,
        "ratio_ci95": [mean - half, mean + half] if half is not None else None,
        "per_seed": ratios,
        "verdict": verdict,
    }


def interval_text(mean: float, half: float | None, show, low=None, high=None) -> str:
    """`mean ± half` in `show`'s format; where the interval would leave the metric's range
    [low, high] (an accuracy above 100%, an error below 0), the interval itself, cut there."""
    if half is None:
        return show(mean)
    lo, hi = mean - half, mean + half
    if (low is not None and lo < low) or (high is not None and hi > high):
        lo = lo if low is None else max(lo, low)
        hi = hi if high is None else min(hi, high)
        return f"{show(mean)} (95% CI {show(lo)}–{show(hi)})"
    return f"{show(mean)} ± {show(half)}"


def ratio_text(comparison: dict) -> str:
    """A paired ratio with its interval, which a ratio of metrics that are never negative does
    not leave below 0."""
    interval = comparison.get("ratio_ci95")
    if not interval:
        return f"{comparison['ratio']:.2f}"
    return f"{comparison['ratio']:.2f} (95% CI {max(interval[0], 0.0):.2f}–{interval[1]:.2f})"


def seed_note(count: int, option: str = "--seeds") -> str | None:
    """What a table says of fewer than three seeds: one gives no interval, two a very wide one
    (its Student t factor is 12.7)."""
    if count >= 3:
        return None
    return (
        f"Note: {count} seed{'s' if count > 1 else ''}: "
        + ("no interval; " if count == 1 else "the 95% interval of two seeds is very wide; ")
        + f"{option} 3 or more gives one that can tell a difference from seed noise."
    )
