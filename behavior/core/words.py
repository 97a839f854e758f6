"""Durations and probabilities as every page, reason and message says them: one rounding, one format.

A ticket's lateness, its reasons, the storefront's message and the queue all say a duration with
`duration_in_words`, so one number is never said two ways ("4 days late" beside "3.3 days later than
promised"); probabilities are said with `probability_in_words`, the three decimals conditions compare
them with ("score >= 0.5").
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal


def duration_in_words(days: float) -> str:
    """A duration given in days, its size only (the sentence says early or late), rounded once and half up:
    "3.3 days" for 3.25 days, "6.0 days" for 5.99; under a day in whole hours ("5 hours"), under an hour in
    whole minutes ("40 minutes")."""
    size = abs(float(days))
    if not math.isfinite(size):
        return "-"
    # To 9 seconds first: a feature stored in float32 (3.3499999) rounds as its value (3.35) does.
    size = round(size, 4)
    hours = _half_up(size * 24)
    if hours >= 24:
        return f"{_half_up(size, '0.1')} days"
    minutes = _half_up(size * 24 * 60)
    if minutes >= 60:
        return "1 hour" if hours == 1 else f"{hours} hours"
    if minutes < 1:
        return "less than a minute"
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def probability_in_words(probability: float | None) -> str:
    """A probability as the admin shows it: three decimals ("0.723"), "-" when there is none."""
    return "-" if probability is None else f"{probability:.3f}"


def _half_up(value: float, step: str = "1") -> Decimal:
    # The shortest repr of the float, so 3.25 is 3.25 (not 3.2499999...): what a person reading "3.25" expects.
    return Decimal(repr(value)).quantize(Decimal(step), rounding=ROUND_HALF_UP)
