#!/usr/bin/env python3
"""Reference vectors for the judge's sequential mode (docs/judge.md,
"Sequential mode (anytime-valid)"), computed from the math of the docs, not
from the Rust code.

Rate metrics (crates/judge/src/sequential/counts.rs). In a step the canary sees
x_c events over exposure n_c, the baseline x_b over n_b. If the canary's rate is
rho times the baseline's, given x = x_c + x_b, x_c ~ Binomial(x, pi(rho)) with
pi(rho) = rho n_c / (rho n_c + n_b). Written here through the log-odds
eta = ln rho + ln n_c - ln n_b:

    ln pi = -softplus(-eta),  ln(1 - pi) = -softplus(eta)   (np.logaddexp(0, .))
    ln LR_t(rho1 : rho0) = x_c (ln pi1 - ln pi0) + x_b (ln(1 - pi1) - ln(1 - pi0))

(the binomial coefficient cancels, so non-integer counts use the same formula).
A step with no exposure on a side carries no information about rho (pi is 0
or 1 whatever rho), so it is no evidence. The e-value is the mixture
sum_j w_j prod_t LR_t(rho0 e^{+-d_j} : rho0) over ln(rho1/rho0) = d_j in
{0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 1.5, 2.5, 4} with weights 1/12 each and
2/12 for 2.5 and 4 ("the large ratios weighted twice"); + for `higher`, - for
lower. ln of it by scipy.special.logsumexp(..., b=weights).

Continuous metrics (crates/judge/src/sequential/paired.rs). A step's pair
(canary c, baseline b) bets 1 + lambda w s, s = sign(c - b) for `higher`
(sign(b - c) for `lower`), 0 on a tie. Components, each a running product:
  signed rank: w = rank of |c - b| among the gaps of the paired steps so far
               (this one included), ties given the lowest rank
               (scipy.stats.rankdata(method="min")), divided by their number;
  tail(q):     w = 1 when max(c, b) > pooled[floor(q (N - 1))] of the N values
               of the earlier pairs (an order statistic, as the fixed tail
               check; computed with the exact decimal q), 0 otherwise and at
               the first paired step.
`lower` is the mirror image: the same e-process on (-c, -b) (so its tail
threshold is pooled[ceil((1 - q)(N - 1))] and the pair's smaller value must
lie below it, as the fixed mode's lower tail).
Weights: stakes lambda in {0.3, 0.6, 0.9}; half the mass on signed rank, half
split evenly over the quantiles (all of it on signed rank without quantiles);
evenly over the stakes within each. A step where a side has no value is no
bet (the e-value carries over).

Whole judge (interim looks): alpha = 0.75 * (1 - confidence) / T, T = one-sided
tests of the config (1 per metric, 2 for `either`; the e-processes' share 0.75,
the rest is the final look's); threshold 1/alpha; a direction crosses at the
first step whose e-value is >= 1/alpha; the metric's path is the larger ln
e-value of its directions at each step, steps being the positions of the
samples (a gap is a step without a bet).

Usage: pip install scipy numpy && python3 crates/judge/gen_sequential_vectors.py
Writes crates/judge/tests/data/sequential_vectors.json (deterministic: fixed seeds).
Checked by crates/judge/tests/judge_sequential_vectors.rs.
"""
import json
import math
import os
from fractions import Fraction

import numpy as np
import scipy
from scipy import special, stats

DATA = os.path.join(os.path.dirname(__file__), "tests", "data")
OUT = os.path.join(DATA, "sequential_vectors.json")

# ln(rho1/rho0) -> weight (out of 12).
RATE_ALTERNATIVES = {0.05: 1, 0.1: 1, 0.2: 1, 0.35: 1, 0.5: 1, 0.75: 1, 1.0: 1, 1.5: 1, 2.5: 2, 4.0: 2}
STAKES = (0.3, 0.6, 0.9)


# ---------------------------------------------------------------- rate metrics

def log_pi(ln_rho, nc, nb):
    """(ln pi(rho), ln(1 - pi(rho))) for an array of ln rho."""
    eta = ln_rho + math.log(nc) - math.log(nb)
    return -np.logaddexp(0.0, -eta), -np.logaddexp(0.0, eta)


def counts_log_e(steps, rho0, higher):
    """steps: [(x_c, n_c, x_b, n_b)] (None: a step without data, no bet)."""
    d = np.array(list(RATE_ALTERNATIVES), dtype=float)
    weights = np.array(list(RATE_ALTERNATIVES.values()), dtype=float)
    weights /= weights.sum()
    ln_rho0 = math.log(rho0)
    ln_rho1 = ln_rho0 + (d if higher else -d)
    log_lr = np.zeros(len(d))
    path = []
    for step in steps:
        if step is not None:
            xc, nc, xb, nb = step
            if nc > 0 and nb > 0:
                a1, b1 = log_pi(ln_rho1, nc, nb)
                a0, b0 = log_pi(np.array([ln_rho0]), nc, nb)
                log_lr = log_lr + xc * (a1 - a0) + xb * (b1 - b0)
        path.append(float(special.logsumexp(log_lr, b=weights)))
    return path


# ---------------------------------------------------------- continuous metrics

def paired_log_e(pairs, side, quantiles):
    """pairs: [(c, b) or None]; side "higher" or "lower"."""
    if side == "lower":
        return paired_log_e([None if p is None else (-p[0], -p[1]) for p in pairs], "higher", quantiles)
    qs = [q for q in quantiles if 0.0 < q < 1.0]
    comps = []  # (weight, quantile or None for signed rank, stake)
    for lam in STAKES:
        comps.append(((1.0 if not qs else 0.5) / len(STAKES), None, lam))
        for q in qs:
            comps.append((0.5 / len(qs) / len(STAKES), q, lam))
    weights = np.array([w for w, _, _ in comps])
    log_prod = np.zeros(len(comps))
    gaps, values = [], []
    path = []
    for p in pairs:
        if p is not None:
            c, b = p
            s = (c > b) - (c < b)
            gaps.append(abs(c - b))
            rank = stats.rankdata(gaps, method="min")[-1] / len(gaps)
            past = sorted(values)
            for i, (_, q, lam) in enumerate(comps):
                if q is None:
                    w = rank
                elif past:
                    t = past[math.floor(Fraction(repr(q)) * (len(past) - 1))]
                    w = 1.0 if max(c, b) > t else 0.0
                else:
                    w = 0.0
                log_prod[i] += math.log1p(lam * w * s)
            values += [c, b]
        path.append(float(special.logsumexp(log_prod, b=weights)))
    return path


# ------------------------------------------- early pass (non-inferiority, continuous)

NI_STAKES = [0.2, 0.4, 0.6, 0.8]


def noninferior_log_e(pairs, margin, side):
    """docs/judge.md, "Early pass": the sign bet against "canary worse by the
    margin". side "higher" (direction increase): s = +1 when max(c,0) <
    margin*max(b,0), -1 when above, 0 on a tie; "lower" (decrease): the same
    with canary and baseline swapped. Uniform mixture over NI_STAKES of
    prod (1 + lambda s), written here as running products per stake."""
    log_prod = np.zeros(len(NI_STAKES))
    path = []
    for p in pairs:
        if p is not None:
            c, b = max(p[0], 0.0), max(p[1], 0.0)
            low, high = (c, margin * b) if side == "higher" else (b, margin * c)
            s = (low < high) - (low > high)
            for i, lam in enumerate(NI_STAKES):
                log_prod[i] += math.log(1.0 + lam * s)
        path.append(float(special.logsumexp(log_prod, b=np.full(len(NI_STAKES), 1.0 / len(NI_STAKES)))))
    return path


def noninferior_cases(rng):
    cases = []
    lengths = [1, 3, 10, 40, 120]
    k = 0
    for shape in ["alike", "at_margin", "beyond", "better", "signed", "gaps", "rounded"]:
        for _ in range(6):
            side = "higher" if k % 2 == 0 else "lower"
            margin = [1.2, 1.1, 1.5, 2.0][k % 4]
            n = lengths[k % len(lengths)]
            k += 1
            b = rng.lognormal(0.0, 0.2, n) * 100.0
            c = rng.lognormal(0.0, 0.2, n) * 100.0
            worse = margin if side == "higher" else 1.0 / margin
            if shape == "at_margin":
                c = c * worse
            elif shape == "beyond":
                c = c * worse * worse
            elif shape == "better":
                c = c / worse
            elif shape == "signed":
                c, b = c - 100.0, b - 100.0
            elif shape == "rounded":
                c, b = np.round(c / 10.0), np.round(b / 10.0)
            pairs = [(short(x), short(y)) for x, y in zip(c, b)]
            if shape in ("gaps", "rounded"):
                pairs = [None if rng.uniform() < 0.2 else p for p in pairs]
            cases.append({"name": f"noninferior_{shape}_{side}_m{margin}_n{n}_{k}", "pairs": pairs,
                          "side": side, "margin": margin, "logE": noninferior_log_e(pairs, margin, side)})
    fixed = [
        ("exact_ties", [(120.0, 100.0), (100.0, 100.0 / 1.2 * 1.2), (0.0, 0.0)]),
        ("zeros_and_negatives", [(-1.0, -2.0), (0.0, 5.0), (5.0, 0.0), (-0.0, 0.0), (3.0, -1.0)]),
        ("all_missing", [None] * 3),
    ]
    for name, pairs in fixed:
        for side in ("higher", "lower"):
            cases.append({"name": f"noninferior_{name}_{side}", "pairs": pairs, "side": side, "margin": 1.2,
                          "logE": noninferior_log_e(pairs, 1.2, side)})
    return cases


# ---------------------------------------------------------------- case makers

def short(x):
    """x to 12 significant digits: a decimal every JSON parser reads exactly
    (serde_json without float_roundtrip may be 1 ulp off on 17 digits, which
    would break the exact ties the cases contain)."""
    return float(f"{x:.12g}")


def noninteger(rng, x):
    """Prometheus increase(): counts extrapolated over the window, not integers."""
    return short(float(x) * float(rng.uniform(0.9, 1.15))) if x > 0 else 0.0


def counts_cases(rng):
    cases = []
    # (canary rate ratio, baseline event rate per unit exposure)
    scenarios = [(1.0, 0.01), (1.0, 0.1), (1.5, 0.02), (3.0, 0.01), (10.0, 0.005), (0.3, 0.05),
                 (None, 0.0), (1.0, 0.0005), (1.25, 0.2)]
    nulls = [(1.0, True), (1.0, False), (1.2, True), (2.0, True), (0.8, False), (0.5, False),
             (1.2, False), (2.0, False)]
    lengths = [1, 2, 5, 10, 25, 40, 60]
    k = 0
    for si, (ratio, base_rate) in enumerate(scenarios):
        for style in ("integers", "increase"):
            for _ in range(4):
                rho0, higher = nulls[k % len(nulls)]
                n = lengths[k % len(lengths)]
                k += 1
                steps = []
                scale = [10, 100, 1000, 20000][int(rng.integers(0, 4))]
                unequal = float(rng.choice([1.0, 0.1, 0.5, 3.0, 20.0]))
                for _ in range(n):
                    nb = float(rng.poisson(scale))
                    nc = float(rng.poisson(scale * unequal))
                    if ratio is None:  # errors only on the canary (10%)
                        xc, xb = float(rng.binomial(int(nc), 0.1)), 0.0
                    else:
                        xb = float(rng.poisson(base_rate * nb))
                        xc = float(rng.poisson(min(base_rate * ratio, 1.0) * nc))
                    r = rng.uniform()
                    if r < 0.05:
                        nc, xc = 0.0, 0.0  # no canary traffic this step
                    elif r < 0.08:
                        nb, xb = 0.0, 0.0
                    elif r < 0.10:
                        nc, xc, nb, xb = 0.0, 0.0, 0.0, 0.0
                    if style == "increase":
                        xc, xb, nc, nb = (noninteger(rng, v) for v in (xc, xb, nc, nb))
                    steps.append((xc, nc, xb, nb))
                cases.append({
                    "name": f"counts_{si}_{style}_{k}_ratio{ratio}_rho0{rho0}_{'higher' if higher else 'lower'}_n{n}",
                    "steps": [list(s) for s in steps], "rho0": rho0, "higher": higher,
                    "logE": counts_log_e(steps, rho0, higher)})
    # Hand-picked shapes.
    fixed = [
        ("canary_only_errors", [(1.0, 10.0, 0.0, 10.0)] * 12, 1.0, True),
        ("canary_only_errors_lower", [(1.0, 10.0, 0.0, 10.0)] * 12, 1.0, False),
        ("baseline_only_errors_lower", [(0.0, 10.0, 2.0, 10.0)] * 10, 1.0, False),
        ("no_events", [(0.0, 100.0, 0.0, 100.0)] * 5, 1.0, True),
        ("no_exposure_anywhere", [(0.0, 0.0, 0.0, 0.0)] * 4, 2.0, True),
        ("one_side_without_exposure", [(0.0, 0.0, 5.0, 100.0), (3.0, 100.0, 0.0, 0.0), (1.0, 50.0, 1.0, 50.0)], 1.0, True),
        ("fractional_counts", [(0.37, 421.9, 2.0, 500.0), (1.5, 99.5, 0.25, 101.2), (0.0, 10.0, 0.8, 10.0)], 1.2, True),
        ("large_counts", [(5200.0, 1e6, 4100.0, 1e6), (5350.0, 1.1e6, 3900.0, 0.9e6)], 1.2, True),
        ("exposure_ratio_100", [(3.0, 10000.0, 1.0, 100.0)] * 8, 1.0, True),
        ("exposure_ratio_100_lower", [(3.0, 10000.0, 1.0, 100.0)] * 8, 1.0, False),
        ("allowed_doubling", [(4.0, 100.0, 1.0, 100.0)] * 15, 2.0, True),
        ("allowed_halving", [(1.0, 100.0, 4.0, 100.0)] * 15, 0.5, False),
    ]
    for name, steps, rho0, higher in fixed:
        cases.append({"name": f"counts_{name}", "steps": [list(s) for s in steps], "rho0": rho0,
                      "higher": higher, "logE": counts_log_e(steps, rho0, higher)})
    return cases


def paired_cases(rng):
    cases = []
    quantile_sets = [[], [0.9], [0.9, 0.95]]
    lengths = [1, 2, 3, 7, 15, 30, 60, 120]
    shapes = ["continuous", "shift1.1", "shift1.3", "shift0.7", "tail0.1", "tail0.3", "rounded",
              "gaps", "shared_burst"]
    k = 0
    for shape in shapes:
        for _ in range(9):
            side = "higher" if k % 2 == 0 else "lower"
            qs = quantile_sets[(k // 2) % 3]
            n = lengths[k % len(lengths)]
            k += 1
            b = rng.lognormal(0.0, 0.5, n) * 100.0
            c = rng.lognormal(0.0, 0.5, n) * 100.0
            if shape.startswith("shift"):
                c = c * float(shape[5:])
            elif shape.startswith("tail"):
                c = np.where(rng.uniform(size=n) < float(shape[4:]), c * 100.0, c)
            elif shape == "rounded":
                # Few distinct values: ties within a side, across sides and c == b.
                c, b = np.round(c / 40.0), np.round(b / 40.0)
            elif shape == "shared_burst":
                burst = rng.lognormal(0.0, 1.0, n)
                c, b = c * burst, b * burst
            pairs = [(short(x), short(y)) for x, y in zip(c, b)]
            if shape in ("gaps", "rounded", "tail0.3"):
                pairs = [None if rng.uniform() < 0.2 else p for p in pairs]
            cases.append({"name": f"paired_{shape}_{side}_q{qs}_n{n}_{k}", "pairs": pairs, "side": side,
                          "tailQuantiles": qs, "logE": paired_log_e(pairs, side, qs)})
    # Hand-picked shapes, every quantile set and side.
    fixed = [
        ("all_ties", [(1.0, 1.0)] * 10),
        ("signed_zero_tie", [(2.0, 1.0), (-0.0, 0.0), (0.0, -0.0), (3.0, 5.0), (0.0, 0.0), (7.0, 1.0)]),
        ("always_higher", [(2.0 + i, 1.0) for i in range(30)]),
        ("single_step", [(5.0, 0.1)]),
        ("all_missing", [None] * 4),
        ("missing_then_tail", [None, (1.0, 1.1), (0.9, 1.0), None, (1.05, 1.0), (1.0, 0.95), (100.0, 1.0),
                               (1.0, 1.02), (0.98, 1.0), (120.0, 1.1), (1.0, 0.99), (130.0, 1.0)]),
        ("timeouts_at_one_value", [(30.0 if i % 4 == 0 else short(0.2 + 0.01 * (i % 7)), short(0.2 + 0.01 * (i % 5)))
                                   for i in range(40)]),
    ]
    for name, pairs in fixed:
        for qs in quantile_sets:
            for side in ("higher", "lower"):
                cases.append({"name": f"paired_{name}_{side}_q{qs}", "pairs": pairs, "side": side,
                              "tailQuantiles": qs, "logE": paired_log_e(pairs, side, qs)})
    return cases


# ---------------------------------------------------------------- whole judge

ABSENT = object()  # beyond the end of a series: no point at all, not a NaN


def metric_paths(metric, samples):
    """[(label, ln e path)] for the metric's checked directions."""
    direction = metric.get("direction", "either")
    sides = {"increase": ["higher"], "decrease": ["lower"], "either": ["higher", "lower"]}[direction]
    replace = metric.get("nanStrategy", "remove") == "replace"
    get = lambda xs, i: xs[i] if i < len(xs) else ABSENT
    # nanStrategy applies to NaN (JSON null) points; a point that is not there is no value.
    fill = lambda v: None if v is ABSENT else (0.0 if v is None and replace else v)
    out = []
    for side in sides:
        if metric.get("kind", "continuous") == "continuous":
            c, b = samples["canary"], samples["baseline"]
            tail = metric.get("tail", {})
            qs = tail.get("quantiles", [0.9, 0.95]) if tail.get("enabled", True) else []
            pairs = []
            for i in range(max(len(c), len(b))):
                x, y = fill(get(c, i)), fill(get(b, i))
                pairs.append(None if x is None or y is None else (x, y))
            path = paired_log_e(pairs, side, qs)
        else:
            c, b = samples["canary"], samples["baseline"]
            effect = metric.get("effectSize", {})
            rho0 = effect.get("allowedIncrease" if side == "higher" else "allowedDecrease", 1.0)
            steps = []
            for i in range(max(len(c["numerator"]), len(b["numerator"]))):
                v = [fill(get(c["numerator"], i)), fill(get(c["denominator"], i)),
                     fill(get(b["numerator"], i)), fill(get(b["denominator"], i))]
                steps.append(None if any(x is None for x in v) else tuple(v))
            path = counts_log_e(steps, rho0, side == "higher")
        out.append(("High" if side == "higher" else "Low", path))
    return out


SEQUENTIAL_SHARE = 0.75


def expected_judgement(config, samples):
    tests = sum(2 if m.get("direction", "either") == "either" else 1 for m in config["metrics"])
    # The e-processes' share of alpha; the final look (not vectored here) has the rest.
    alpha = SEQUENTIAL_SHARE * (1.0 - config["confidence"]) / tests
    log_threshold = math.log(1.0 / alpha)
    by_name = {s["name"]: s for s in samples}
    out = []
    for m in config["metrics"]:
        paths = metric_paths(m, by_name[m["name"]])
        steps = max(len(p) for _, p in paths)
        crossings = []
        for label, p in paths:
            # A value within reach of the threshold's last bits proves nothing.
            if any(abs(v - log_threshold) < 1e-6 for v in p):
                return None
            at = next((i for i, v in enumerate(p) if v >= log_threshold), None)
            if at is not None:
                crossings.append((at, label))
        first = min(crossings) if crossings else None
        out.append({
            "name": m["name"], "alpha": alpha, "threshold": 1.0 / alpha, "steps": steps,
            "crossedAtStep": None if first is None else first[0] + 1,
            "classification": "Pass" if first is None else first[1],
            "logPath": [max(p[i] for _, p in paths) for i in range(steps)],
        })
    return out


def judge_cases(rng):
    cases = []
    setups = [
        # (confidence, latency direction, errors direction, latency tail quantiles, regression)
        (0.98, "increase", "increase", [0.9, 0.95], "healthy"),
        (0.98, "increase", "increase", [0.9, 0.95], "errors"),
        (0.98, "increase", "either", [0.9, 0.95], "errors"),
        (0.95, "either", "increase", [0.9], "tail"),
        (0.98, "either", "either", [0.9, 0.95], "shift"),
        (0.99, "increase", "either", [], "shift"),
        (0.98, "decrease", "increase", [0.9, 0.95], "faster"),
        (0.98, "either", "increase", [0.9, 0.95], "gaps"),
        (0.98, "increase", "increase", [0.9, 0.95], "gaps_errors"),
        (0.98, "decrease", "either", [0.9], "gaps_faster"),
        (0.95, "increase", "either", [0.9, 0.95], "fewer_errors"),
        (0.98, "increase", "increase", [0.9, 0.95], "allowed"),
        (0.98, "either", "either", [0.9], "healthy"),
        (0.98, "increase", "increase", [0.9, 0.95], "errors_replace"),
    ]
    for confidence, lat_dir, err_dir, qs, regression in setups:
        for attempt in range(100):
            n = int(rng.integers(20, 60))
            b_lat = rng.lognormal(0.0, 0.3, n) * 100.0
            c_lat = rng.lognormal(0.0, 0.3, n) * 100.0
            if regression == "tail":
                c_lat = np.where(rng.uniform(size=n) < 0.3, c_lat * 100.0, c_lat)
            elif regression == "shift":
                c_lat = c_lat * 1.5
            elif regression in ("faster", "gaps_faster"):
                c_lat = c_lat * 0.6
            req_c = rng.poisson(10.0, n).astype(float)
            req_b = rng.poisson(10.0, n).astype(float)
            err_b = rng.binomial(req_b.astype(int), 0.02).astype(float)
            rate_c = {"errors": 0.12, "errors_replace": 0.12, "gaps_errors": 0.2, "fewer_errors": 0.0, "allowed": 0.03}.get(regression, 0.02)
            if regression == "fewer_errors":
                err_b = rng.binomial(req_b.astype(int), 0.15).astype(float)
            err_c = rng.binomial(req_c.astype(int), rate_c).astype(float)
            latency = {"name": "latency", "direction": lat_dir, "tail": {"quantiles": qs} if qs else {"enabled": False}}
            errors = {"name": "errors", "kind": "rate", "direction": err_dir}
            if regression == "allowed":
                errors["effectSize"] = {"allowedIncrease": 1.2}
            c_vals, b_vals = [short(v) for v in c_lat], [short(v) for v in b_lat]
            c_num, c_den = [float(v) for v in err_c], [float(v) for v in req_c]
            b_num, b_den = [float(v) for v in err_b], [float(v) for v in req_b]
            if regression in ("gaps", "gaps_errors", "gaps_faster", "errors_replace"):
                # NaN (JSON null) points: a latency point, a canary denominator and a baseline numerator.
                for i in rng.choice(n, 4, replace=False):
                    c_vals[i] = None
                for i in rng.choice(n, 3, replace=False):
                    c_den[i] = None
                b_num[int(rng.integers(0, n))] = None
                b_vals = b_vals[:-2]  # the baseline's last points not yet scraped
                if regression == "errors_replace":
                    errors["nanStrategy"] = "replace"
                    latency["nanStrategy"] = "replace"
            config = {"confidence": confidence, "mode": "sequential", "metrics": [latency, errors]}
            samples = [
                {"name": "latency", "canary": c_vals, "baseline": b_vals},
                {"name": "errors", "canary": {"numerator": c_num, "denominator": c_den},
                 "baseline": {"numerator": b_num, "denominator": b_den}},
            ]
            expected = expected_judgement(config, samples)
            if expected is None:
                continue  # too close to the threshold; draw again
            # Effect sizes decide a crossing's label beyond the e-process: not checked here.
            for e, m in zip(expected, config["metrics"]):
                if "effectSize" in m:
                    e["classification"] = None
            cases.append({"name": f"judge_{regression}_c{confidence}_{lat_dir}_{err_dir}", "config": config,
                          "samples": samples, "expected": expected})
            break
    return cases


def self_check(rng):
    """The reference must itself be what the docs claim: martingales under the null."""
    for _ in range(20):
        # Rates: one step of x events split Binomial(x, pi(rho0)) has E[e-value] = 1.
        x, nc, nb = int(rng.integers(1, 30)), float(rng.uniform(1, 500)), float(rng.uniform(1, 500))
        rho0, higher = float(rng.choice([1.0, 1.2, 2.0, 0.5])), bool(rng.integers(0, 2))
        pi0 = rho0 * nc / (rho0 * nc + nb)
        mean = sum(stats.binom.pmf(k, x, pi0) * math.exp(counts_log_e([(k, nc, x - k, nb)], rho0, higher)[0])
                   for k in range(x + 1))
        assert abs(mean - 1.0) < 1e-12, mean
        # Early pass: at the null's boundary (canary = margin x an independent copy of the
        # baseline) the next e-value averages to the current one over a finite support.
        support = [float(a) for a in rng.lognormal(0.0, 1.0, int(rng.integers(1, 6)))]
        margin = float(rng.choice([1.1, 1.2, 2.0]))
        for side in ("higher", "lower"):
            now = math.exp(noninferior_log_e(past_ni := [(1.0, 2.0), None], margin, side)[-1])
            total = 0.0
            for x in support:
                for y in support:
                    pair = (margin * y, x) if side == "higher" else (y, margin * x)
                    total += math.exp(noninferior_log_e(past_ni + [pair], margin, side)[-1])
            mean = total / len(support) ** 2
            assert abs(mean - now) < 1e-12 * max(now, 1.0), (now, mean)
        # Continuous: given the past, the two labellings of the next pair average to the current e-value.
        past = [(float(a), float(b)) for a, b in rng.lognormal(0.0, 1.0, (int(rng.integers(0, 12)), 2))]
        u, v = (float(a) for a in rng.lognormal(0.0, 1.0, 2))
        for side in ("higher", "lower"):
            for qs in ([], [0.9], [0.9, 0.95]):
                now = math.exp(paired_log_e(past, side, qs)[-1]) if past else 1.0
                one = math.exp(paired_log_e(past + [(u, v)], side, qs)[-1])
                other = math.exp(paired_log_e(past + [(v, u)], side, qs)[-1])
                assert abs((one + other) / 2 - now) < 1e-12 * max(now, 1.0), (now, one, other)


def main():
    rng = np.random.default_rng(20260211)
    self_check(np.random.default_rng(1))
    counts = counts_cases(rng)
    paired = paired_cases(rng)
    whole = judge_cases(rng)
    # Its own generator: the cases above stay as they were.
    noninferior = noninferior_cases(np.random.default_rng(20261203))
    with open(OUT, "w") as f:
        json.dump({"generator": "crates/judge/gen_sequential_vectors.py", "scipy": scipy.__version__,
                   "counts": counts, "paired": paired, "judge": whole, "nonInferior": noninferior},
                  f, indent=1)
        f.write("\n")
    crossed = sum(1 for c in whole for m in c["expected"] if m["crossedAtStep"] is not None)
    print(f"wrote {len(counts)} counts, {len(paired)} paired, {len(whole)} whole-judge "
          f"({crossed} crossings) and {len(noninferior)} early-pass cases to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
