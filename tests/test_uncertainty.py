"""Bootstrap confidence intervals and paired significance tests."""

from __future__ import annotations

import numpy as np
import pytest

from seqrec_cli.core.uncertainty import (
    bootstrap_ci,
    bootstrap_means,
    paired_comparison,
    paired_t_test,
    wilcoxon_signed_rank,
)


def test_bootstrap_ci_covers_the_true_value_about_95_percent_of_the_time():
    # 200 synthetic evaluations of 400 users with hit probability 0.3: the 95% CI should miss ~5%
    truth, rng = 0.3, np.random.default_rng(1)
    covered = 0
    for rep in range(200):
        hits = (rng.random(400) < truth).astype(float)
        ci = bootstrap_ci({"HR": hits}, resamples=300, seed=rep)["HR"]
        assert ci["low"] <= ci["mean"] <= ci["high"]
        covered += ci["low"] <= truth <= ci["high"]
    assert 0.90 <= covered / 200 <= 0.99
    # and its width matches the normal-theory standard error of a proportion
    ci = bootstrap_ci({"HR": (np.random.default_rng(7).random(4000) < truth).astype(float)}, 1000, 0)["HR"]
    assert ci["high"] - ci["low"] == pytest.approx(2 * 1.96 * np.sqrt(truth * (1 - truth) / 4000), rel=0.15)


def test_bootstrap_is_seeded_and_shares_resamples_across_metrics():
    values = {"a": np.arange(10.0), "b": np.arange(10.0) * 2}
    one, two = bootstrap_means(values, 50, 3), bootstrap_means(values, 50, 3)
    assert np.array_equal(one["a"], two["a"])
    assert np.allclose(one["b"], 2 * one["a"])  # same user draws for every metric
    assert not np.array_equal(one["a"], bootstrap_means(values, 50, 4)["a"])


def test_paired_tests_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a = rng.random(300)
    b = a - 0.05 + rng.normal(0, 0.2, 300)
    b[:20] = a[:20]  # some zero differences
    diff = a - b
    assert paired_t_test(diff)["p"] == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-6)
    ref = stats.wilcoxon(diff, zero_method="wilcox", correction=False, method="approx")
    ours = wilcoxon_signed_rank(diff)
    assert ours["p"] == pytest.approx(ref.pvalue, rel=1e-6)
    assert min(ours["W"], ours["n"] * (ours["n"] + 1) / 2 - ours["W"]) == pytest.approx(ref.statistic)


def test_wilcoxon_handles_ties_like_scipy():
    stats = pytest.importorskip("scipy.stats")
    diff = np.array([1, 1, 1, -1, 2, 2, -2, 3, 0, 0, 1, 4, -1, 1], dtype=float)
    ref = stats.wilcoxon(diff, zero_method="wilcox", correction=False, method="approx")
    assert wilcoxon_signed_rank(diff)["p"] == pytest.approx(ref.pvalue, rel=1e-6)


def test_paired_comparison_of_identical_runs_and_of_a_clear_winner():
    a = np.random.default_rng(2).random(500)
    same = paired_comparison(a, a.copy(), resamples=200)
    assert same["diff"] == 0.0 and same["t_test"]["p"] == 1.0 and same["wilcoxon"]["p"] == 1.0
    better = paired_comparison(a + 0.1, a, resamples=200)
    assert better["diff"] == pytest.approx(0.1) and better["low"] == pytest.approx(0.1)
    assert better["t_test"]["p"] == 0.0 and better["wilcoxon"]["p"] < 1e-50 and better["a_better"] == 500
