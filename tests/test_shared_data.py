"""The tests that compare with published figures cannot go unchecked in CI: without ../shared they fail there, and
skip with their reason elsewhere."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ["tests/behavior/test_import.py::test_full_taobao_prefix_matches_its_published_counts",
             "tests/behavior/test_scorers.py::test_bgnbd_finds_the_published_estimates_on_the_cdnow_sample"]


def _run_without_shared(tmp_path: Path, ci: str | None) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["SHARED_DATASETS"] = str(tmp_path / "nowhere")
    if ci is not None:
        env["CI"] = ci
    done = subprocess.run([sys.executable, "-m", "pytest", *PUBLISHED, "-q", "-rsf", "-p", "no:cacheprovider",
                           "-p", "no:xdist"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout


@pytest.mark.parametrize("ci", ["true", "1"])
def test_in_ci_the_published_figures_fail_without_the_shared_data(tmp_path, ci):
    code, out = _run_without_shared(tmp_path, ci)

    assert code == 1 and re.search(r"\b2 errors\b", out) and "skipped" not in out, out  # failed in setup
    assert out.count("in CI the published figures must be checked") == 2, out


def test_elsewhere_they_skip_with_their_reason(tmp_path):
    code, out = _run_without_shared(tmp_path, None)

    assert code == 0 and re.search(r"\b2 skipped\b", out) and "failed" not in out, out
    assert out.count("is not on this machine") == 2, out
