#!/usr/bin/env python3
"""Generate reference vectors for the judge's Mann-Whitney p-values and
Hodges-Lehmann confidence intervals.

p-values come from scipy.stats.mannwhitneyu(method="asymptotic",
use_continuity=True, alternative="two-sided"). The Hodges-Lehmann estimate is
numpy's median of all pairwise differences canary - baseline; the interval is
the Moses/Bauer inversion of the rank-sum test with the normal approximation,
written out here independently of the Rust code:

    sigma^2 = n*m/12 * ((N+1) - sum(t^3 - t) / (N (N-1)))   (ties in the pooled sample)
    k       = ceil(n*m/2 - z_{(1+c)/2} * sigma - 1/2)        (continuity corrected)
    CI      = [d_(k), d_(n*m - k + 1)]  (1-based order statistics of the differences)
              unbounded (null) when k < 1.

Usage: pip install scipy numpy && python3 hack/gen_judge_vectors.py
Writes tests/data/judge/mann_whitney_vectors.json (deterministic: fixed seed).
"""
import json
import math
import os

import numpy as np
from scipy import stats

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "judge", "mann_whitney_vectors.json")


def moses_ci(x, y, confidence):
    n, m = len(x), len(y)
    pooled = np.concatenate([x, y])
    _, counts = np.unique(pooled, return_counts=True)
    tie = float(np.sum(counts.astype(float) ** 3 - counts))
    big_n = n + m
    var = n * m / 12.0 * ((big_n + 1) - tie / (big_n * (big_n - 1)))
    sigma = math.sqrt(max(var, 0.0))
    z = stats.norm.ppf((1 + confidence) / 2)
    raw = n * m / 2.0 - z * sigma - 0.5
    diffs = np.sort(np.subtract.outer(x, y).ravel())
    est = float(np.median(diffs))
    k = math.ceil(raw)
    if k < 1:
        return est, None, None, raw
    return est, float(diffs[k - 1]), float(diffs[n * m - k]), raw


def main():
    rng = np.random.default_rng(20261123)
    cases = []
    sizes = [(1, 1), (1, 3), (2, 2), (3, 3), (2, 5), (3, 8), (5, 5), (8, 12),
             (10, 10), (20, 20), (30, 50), (50, 50), (60, 40), (120, 120), (200, 150)]
    shifts = [0.0, 0.3, 1.0, 3.0]
    for n, m in sizes:
        for shift in shifts:
            for style in ("continuous", "ties", "integers"):
                for confidence in (0.98, 0.95):
                    y = rng.normal(10.0, 2.0, m)
                    x = rng.normal(10.0 + shift * 2.0, 2.0, n)
                    if style == "ties":
                        x, y = np.round(x), np.round(y)
                    elif style == "integers":
                        x = rng.poisson(3 + shift, n).astype(float)
                        y = rng.poisson(3, m).astype(float)
                    pooled = np.concatenate([x, y])
                    if np.all(pooled == pooled[0]):
                        continue  # the judge short-circuits this (all equal: Pass)
                    res = stats.mannwhitneyu(x, y, method="asymptotic", use_continuity=True,
                                             alternative="two-sided")
                    est, lo, hi, raw = moses_ci(x, y, confidence)
                    # A k that sits on an integer boundary would make the test
                    # depend on the last bit of z; such cases prove nothing.
                    if abs(raw - round(raw)) < 1e-7:
                        continue
                    cases.append({
                        "name": f"n{n}_m{m}_shift{shift}_{style}_c{confidence}",
                        "confidence": confidence,
                        "canary": x.tolist(),
                        "baseline": y.tolist(),
                        "u": float(res.statistic),
                        "pValue": float(res.pvalue),
                        "hodgesLehmann": est,
                        "ciLower": lo,
                        "ciUpper": hi,
                    })
    with open(OUT, "w") as f:
        json.dump({"generator": "hack/gen_judge_vectors.py", "scipy": __import__("scipy").__version__,
                   "cases": cases}, f, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
