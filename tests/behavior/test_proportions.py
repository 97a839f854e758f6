"""Intervals for proportions against the worked examples of a statistics text.

R. G. Newcombe, "Interval estimation for the difference between independent proportions: comparison of eleven
methods", Statistics in Medicine 17 (1998) 873-890, Table II, method 10 (the hybrid score interval), to its four
decimals; and Wilson's score interval, whose bound at 0 of n is z^2 / (n + z^2) by hand (0.2775 for 0 of 10).
"""

import pytest

from behavior.core.proportions import newcombe_interval, wilson_interval

pytestmark = pytest.mark.sqlite


def test_wilson_keeps_its_width_at_zero_and_at_n():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=5e-5)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=5e-5)
    assert wilson_interval(0, 5) == pytest.approx((0.0, 3.8415 / 8.8415), abs=5e-5)  # "control (0 of 5)"


@pytest.mark.parametrize(("counts", "interval"), [
    ((56, 70, 48, 80), (0.0524, 0.3339)),  # (a)
    ((9, 10, 3, 10), (0.1705, 0.8090)),  # (b)
    ((5, 56, 0, 29), (-0.0381, 0.1926)),  # (d): a group with no events
    ((0, 10, 0, 20), (-0.1611, 0.2775)),  # (e)
    ((0, 10, 0, 10), (-0.2775, 0.2775)),  # (f): no conversions anywhere, still not zero wide
    ((10, 10, 0, 20), (0.6791, 1.0)),  # (g)
    ((10, 10, 0, 10), (0.6075, 1.0)),  # (h)
])
def test_newcombes_hybrid_score_interval_matches_his_table(counts, interval):
    assert newcombe_interval(*counts) == pytest.approx(interval, abs=5e-5)
