"""Intervals for proportions that stay honest at 0 and n: Wilson's score interval for one proportion and
Newcombe's hybrid score interval for the difference of two.

The normal approximation (Wald) collapses there: 0 conversions of 5 gives [0%, 0%], as if five customers proved
that nobody converts. Source: R. G. Newcombe, "Interval estimation for the difference between independent
proportions: comparison of eleven methods", Statistics in Medicine 17 (1998) 873-890, method 10 (its Table II
has the worked examples the tests check); Wilson's interval is his method 3 of the companion paper (same volume,
857-872).
"""

from __future__ import annotations

import math

Z95 = 1.959964  # the standard normal's 97.5th percentile: two-sided 95%


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for successes / n: the proportions p whose score test at z accepts the count."""
    if n <= 0:
        raise ValueError("a proportion needs at least one trial")
    if not 0 <= successes <= n:
        raise ValueError(f"{successes} successes is not a count of {n} trials")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # At 0 and n the interval reaches the bound exactly; the arithmetic leaves a last-digit residue.
    return (0.0 if successes == 0 else centre - half), (1.0 if successes == n else centre + half)


def newcombe_interval(successes_1: int, n_1: int, successes_2: int, n_2: int, z: float = Z95
                      ) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 - p2: each proportion's Wilson interval, their distances from
    the estimates combined as the normal approximation combines variances."""
    p1, p2 = successes_1 / n_1, successes_2 / n_2
    low1, high1 = wilson_interval(successes_1, n_1, z)
    low2, high2 = wilson_interval(successes_2, n_2, z)
    difference = p1 - p2
    return (difference - math.sqrt((p1 - low1) ** 2 + (high2 - p2) ** 2),
            difference + math.sqrt((high1 - p1) ** 2 + (p2 - low2) ** 2))
