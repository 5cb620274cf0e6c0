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

Usage: pip install scipy numpy && python3 crates/judge/gen_vectors.py
Writes crates/judge/tests/data/mann_whitney_vectors.json (deterministic: fixed seed).

It also writes crates/judge/tests/data/rate_vectors.json for the rate test: one-sided
p-values of the exact conditional test, scipy.stats.binomtest(x_c, x_c + x_b,
n_c / (n_c + n_b)), and the Clopper-Pearson interval of that proportion
(binomtest(...).proportion_ci(method="exact")) mapped to the rate ratio
pi / (1 - pi) * n_b / n_c.

And crates/judge/tests/data/hypergeometric_vectors.json: P(X >= k) for the tail check's
exact exceedance test, scipy.stats.hypergeom.sf(k - 1, N, K, n).
"""
import json
import math
import os

import numpy as np
from scipy import stats

DATA = os.path.join(os.path.dirname(__file__), "tests", "data")
OUT = os.path.join(DATA, "mann_whitney_vectors.json")
RATE_OUT = os.path.join(DATA, "rate_vectors.json")
HYPER_OUT = os.path.join(DATA, "hypergeometric_vectors.json")


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
        json.dump({"generator": "crates/judge/gen_vectors.py", "scipy": __import__("scipy").__version__,
                   "cases": cases}, f, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}")


def rate_cases():
    rng = np.random.default_rng(426)
    fixed = [(3, 100, 0, 10000), (1, 10000, 1, 10000), (2, 1000, 0, 50), (10, 10000, 0, 10000),
             (0, 5000, 7, 5000), (50, 20000, 30, 20000), (1, 1, 0, 1), (0, 10, 1, 1000)]
    for _ in range(60):
        fixed.append((int(rng.integers(0, 40)), int(rng.integers(1, 20000)),
                      int(rng.integers(0, 40)), int(rng.integers(1, 20000))))
    cases = []
    for confidence in (0.98, 0.95):
        for xc, nc, xb, nb in fixed:
            if xc + xb == 0:
                continue  # no events: the judge passes without a test
            pi0 = nc / (nc + nb)
            test = stats.binomtest(xc, xc + xb, pi0, alternative="greater")
            less = stats.binomtest(xc, xc + xb, pi0, alternative="less")
            ci = stats.binomtest(xc, xc + xb, pi0).proportion_ci(confidence_level=confidence, method="exact")
            to_ratio = lambda p: p / (1 - p) * nb / nc
            cases.append({
                "canary": [xc, nc], "baseline": [xb, nb], "confidence": confidence,
                "pHigher": float(test.pvalue), "pLower": float(less.pvalue),
                "ratioLower": float(to_ratio(ci.low)),
                "ratioUpper": None if ci.high >= 1.0 else float(to_ratio(ci.high)),
            })
    with open(RATE_OUT, "w") as f:
        json.dump({"generator": "crates/judge/gen_vectors.py", "cases": cases}, f, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {os.path.normpath(RATE_OUT)}")


def hypergeometric_cases():
    rng = np.random.default_rng(780)
    cases = []
    for _ in range(200):
        population = int(rng.integers(2, 500))
        successes = int(rng.integers(0, population + 1))
        draws = int(rng.integers(1, population + 1))
        k = int(rng.integers(0, min(successes, draws) + 2))
        cases.append({"population": population, "successes": successes, "draws": draws, "k": k,
                      "sf": float(stats.hypergeom.sf(k - 1, population, successes, draws))})
    # The #780 shape: all top-K pooled values from the canary.
    for n in (12, 50, 120):
        for big_k in (2, 5, 12, 24):
            if big_k <= n:
                cases.append({"population": 2 * n, "successes": big_k, "draws": n, "k": big_k,
                              "sf": float(stats.hypergeom.sf(big_k - 1, 2 * n, big_k, n))})
    with open(HYPER_OUT, "w") as f:
        json.dump({"generator": "crates/judge/gen_vectors.py", "cases": cases}, f, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {os.path.normpath(HYPER_OUT)}")


if __name__ == "__main__":
    main()
    rate_cases()
    hypergeometric_cases()
