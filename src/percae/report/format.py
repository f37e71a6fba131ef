"""How a report writes a number: an accuracy in percent, an error in pixels to two decimals,
an interval within the metric's range."""

from __future__ import annotations

import math

from ..statistics import interval_text


def fmt(value, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.1f}%" if metric == "accuracy" else f"{value:.2f}"


def fmt_interval(value, half, metric: str) -> str:
    """mean ± half-width; where the interval would leave the metric's range (an accuracy
    beyond [0, 100%], an error below 0), the interval itself, cut there."""
    if value is None:
        return fmt(value, metric)
    high = 1.0 if metric == "accuracy" else None
    return interval_text(value, half, lambda v: fmt(v, metric), 0.0, high)
