"""Uncertainty over users: bootstrap confidence intervals and paired significance tests.

Bootstrap: `resamples` draws of the evaluated cases with replacement (seeded); the CI is the
percentile interval of the resampled means. The same draws serve every metric, so the CIs of
different metrics are computed on identical resamples. Paired tests compare two runs case by case
on the same cases: the paired t-test (t distribution via scipy when installed, else the normal
approximation, which is what it converges to for thousands of users) and the Wilcoxon signed-rank
test (normal approximation with tie and zero corrections; exact enough for n > 50).
"""

from __future__ import annotations

import math

import numpy as np


def bootstrap_means(values: dict[str, np.ndarray], resamples: int, seed: int) -> dict[str, np.ndarray]:
    """{name: [E] per-case values} -> {name: [R] means of R bootstrap resamples of the cases}."""
    names = list(values)
    matrix = np.stack([np.asarray(values[n], dtype=np.float64) for n in names], axis=1)  # [E, M]
    n_cases = len(matrix)
    rng = np.random.default_rng(seed)
    means = np.empty((resamples, len(names)))
    for start in range(0, resamples, 100):  # 100 resamples at a time bounds memory at 100 x E
        stop = min(start + 100, resamples)
        weights = rng.multinomial(n_cases, np.full(n_cases, 1.0 / n_cases), size=stop - start)  # [r, E]
        means[start:stop] = weights @ matrix / n_cases  # [r, M]
    return {name: means[:, i] for i, name in enumerate(names)}


def bootstrap_ci(values: dict[str, np.ndarray], resamples: int = 1000, seed: int = 0,
                 level: float = 0.95) -> dict[str, dict[str, float]]:
    """{name: {"mean", "low", "high"}}: percentile bootstrap interval of the mean over cases."""
    draws = bootstrap_means(values, resamples, seed)
    tail = (1.0 - level) / 2.0 * 100.0
    return {name: {"mean": float(np.mean(values[name])),
                   "low": float(np.percentile(draws[name], tail)),
                   "high": float(np.percentile(draws[name], 100.0 - tail))} for name in values}


def _normal_two_sided(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0))


def paired_t_test(diff: np.ndarray) -> dict[str, float]:
    """Two-sided paired t-test of mean(diff) = 0."""
    diff = np.asarray(diff, dtype=np.float64)
    n = len(diff)
    sd = diff.std(ddof=1) if n > 1 else 0.0
    if sd == 0.0:
        return {"t": 0.0 if diff.mean() == 0 else math.copysign(math.inf, diff.mean()),
                "p": 1.0 if diff.mean() == 0 else 0.0, "df": n - 1}
    t = float(diff.mean() / (sd / math.sqrt(n)))
    try:
        from scipy import stats

        p = float(2.0 * stats.t.sf(abs(t), n - 1))
    except ImportError:
        p = _normal_two_sided(t)
    return {"t": t, "p": p, "df": n - 1}


def wilcoxon_signed_rank(diff: np.ndarray) -> dict[str, float]:
    """Two-sided Wilcoxon signed-rank test (zeros dropped, average ranks for ties, normal approximation)."""
    diff = np.asarray(diff, dtype=np.float64)
    diff = diff[diff != 0.0]
    n = len(diff)
    if n == 0:
        return {"W": 0.0, "z": 0.0, "p": 1.0, "n": 0}
    magnitude = np.abs(diff)
    order = np.argsort(magnitude, kind="stable")
    ranks = np.empty(n)
    sorted_mag = magnitude[order]
    # average rank within each group of equal magnitudes
    starts = np.flatnonzero(np.r_[True, sorted_mag[1:] != sorted_mag[:-1]])
    ends = np.r_[starts[1:], n]
    tie_term = 0.0
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + 1 + e) / 2.0
        t = e - s
        tie_term += t ** 3 - t
    w_plus = float(ranks[diff > 0].sum())
    mean = n * (n + 1) / 4.0
    var = n * (n + 1) * (2 * n + 1) / 24.0 - tie_term / 48.0
    z = (w_plus - mean) / math.sqrt(var) if var > 0 else 0.0
    return {"W": w_plus, "z": float(z), "p": _normal_two_sided(z), "n": n}


def paired_comparison(a: np.ndarray, b: np.ndarray, resamples: int = 1000, seed: int = 0,
                      level: float = 0.95) -> dict:
    """A vs B on the same cases: mean difference (A - B), its bootstrap CI and both paired tests."""
    return paired_comparisons({"m": a}, {"m": b}, resamples, seed, level)["m"]


def paired_comparisons(
    a: dict[str, np.ndarray],
    b: dict[str, np.ndarray],
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict]:
    """paired_comparison for every metric of {name: [E] per-case values}, on one shared set of resamples."""
    diffs = {
        name: np.asarray(a[name], dtype=np.float64) - np.asarray(b[name], dtype=np.float64) for name in a
    }
    cis = bootstrap_ci(diffs, resamples, seed, level)
    return {name: {"a": float(np.mean(a[name])), "b": float(np.mean(b[name])), "diff": cis[name]["mean"],
                   "low": cis[name]["low"], "high": cis[name]["high"], "t_test": paired_t_test(diff),
                   "wilcoxon": wilcoxon_signed_rank(diff), "a_better": int((diff > 0).sum()),
                   "b_better": int((diff < 0).sum()), "cases": len(diff)} for name, diff in diffs.items()}
