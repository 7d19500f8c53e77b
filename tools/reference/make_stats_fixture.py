#!/usr/bin/python3
"""Writes tests/fixtures/stats_ref.json: scipy's numbers for the statistics of `peftbench compare`
(harness/stats.h), which tests/test_stats.c checks the C code against. The C test needs no
Python: the inputs and scipy's answers are both in the fixture.

Run from the repo root with Debian's scipy and scikit-learn (python3-scipy, python3-sklearn):
    /usr/bin/python3 tools/reference/make_stats_fixture.py
Deterministic: the small inputs are written out below, the larger ones come from
numpy.random.RandomState(seed) (the legacy stream numpy keeps frozen) and are stored in the
fixture anyway. Regression values are rounded to float32 first (what prediction files hold).

What is computed, per section of the fixture:
  welch        scipy.stats.ttest_ind(b, a, equal_var=False): t and p of B - A; df from
               scipy's own helper (scipy.stats._stats_py._unequal_var_ttest_denom, what
               ttest_ind uses; scipy 1.10's result does not expose df).
  permutation  scipy.stats.permutation_test((a, b), mean(b) - mean(a),
               permutation_type='independent', n_resamples=np.inf, alternative='two-sided'):
               the exact p, and the tail counts c_ge = #{T >= T_obs - g}, c_le = #{T <= T_obs + g}
               over its null distribution with scipy's own tie tolerance g (p = min(1, 2 min/M)).
               One case has C(N, n_b) > 100,000 splits: the C code runs Monte Carlo there and
               is checked against this exact p within its Monte Carlo error.
  metrics      scikit-learn accuracy_score, f1_score, matthews_corrcoef; scipy pearsonr,
               spearmanr (ties averaged) on fixed predictions.
  quantile     numpy.percentile (linear interpolation, what scipy.stats.bootstrap uses).
  bootstrap    scipy.stats.bootstrap((pred_a, pred_b, gold), M(b) - M(a), paired=True,
               method='percentile', confidence_level=0.95, n_resamples=R_ref): its CI, and, from
               its bootstrap distribution, the range the C estimate (R_c resamples) must fall in:
               the C percentile at level u estimates the true quantile Q(u); with
               s = sqrt(u(1-u)/R_c) + sqrt(u(1-u)/R_ref) (binomial standard errors of the level
               reached by an empirical quantile, C's and the reference's), the bounds are the
               reference quantiles at u - 5s ('lower') and u + 5s ('higher'). Likewise the
               shifted-bootstrap p-value (1 + #{|d_r - d| >= |d|}) / (R + 1) of the reference
               distribution, with tolerance 5 sqrt(p(1-p)) (1/sqrt(R_c) + 1/sqrt(R_ref)) + 2/R_c,
               and the standard error with tolerance 6 sd (1/sqrt(2 R_c) + 1/sqrt(2 R_ref)).
  randomization scipy.stats.permutation_test((pred_a, pred_b), M(b) - M(a), permutation_type=
               'samples' (swaps a[i] and b[i]), alternative='two-sided'): exact over all 2^n
               swaps for small n, Monte Carlo (R_ref) for a larger case. The C p-value (R_c
               rounds) must be within 5 sqrt(p(1-p)) (1/sqrt(R_c) + 1/sqrt(R_ref)) + 2/R_c
               (R_ref term 0 when exact) of it.
"""
import json
import math
import os
import sys

import numpy as np
import scipy
import scipy.stats as st
import sklearn
from scipy.stats._stats_py import _unequal_var_ttest_denom
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

OUT = "tests/fixtures/stats_ref.json"
Z = 5.0        # standard errors of Monte Carlo tolerance
R_C = 10000    # resamples the C test uses (bootstrap, randomisation)
R_REF = 200000 # reference resamples (scipy)


def f32(x):
    return np.asarray(x, dtype=np.float32).astype(np.float64)


# ---------------------------------------------------------------- Welch

WELCH = [
    # (name, a, b): seed scores of two configurations
    ("5v5", [0.8234, 0.8197, 0.8291, 0.8153, 0.8266], [0.8417, 0.8390, 0.8475, 0.8352, 0.8441]),
    ("3v4", [1.0, 2.0, 3.5], [2.0, 4.0, 5.0, 7.0]),
    ("2v2", [0.51, 0.55], [0.60, 0.58]),
    ("2v6_unequal_var", [0.70, 0.74], [0.71, 0.69, 0.75, 0.73, 0.68, 0.77]),
    ("negative_t", [0.62, 0.64, 0.61, 0.66], [0.55, 0.58, 0.52]),
    ("far_tail", [0.10, 0.11, 0.105, 0.102, 0.108, 0.099], [0.90, 0.91, 0.905, 0.899, 0.902, 0.907]),
]


def welch_cases():
    rs = np.random.RandomState(7)
    cases = [(n, list(map(float, a)), list(map(float, b))) for n, a, b in WELCH]
    # df > 30 (where gsl_cdf_tdist_Q would switch to its Cornish-Fisher expansion)
    a = rs.normal(0.80, 0.02, 40)
    b = rs.normal(0.81, 0.03, 50)
    cases.append(("40v50_df_gt_30", a.tolist(), b.tolist()))
    a = rs.normal(0.50, 0.01, 35)
    b = rs.normal(0.52, 0.012, 33)
    cases.append(("35v33_small_p", a.tolist(), b.tolist()))
    out = []
    for name, a, b in cases:
        r = st.ttest_ind(b, a, equal_var=False)
        va, vb = np.var(a, ddof=1), np.var(b, ddof=1)
        df, _ = _unequal_var_ttest_denom(vb, len(b), va, len(a))
        out.append({"name": name, "a": a, "b": b, "t": float(r.statistic), "df": float(df), "p": float(r.pvalue)})
    return out


# ---------------------------------------------------------------- permutation

PERM = [
    ("5v5", [0.8234, 0.8197, 0.8291, 0.8153, 0.8266], [0.8417, 0.8390, 0.8475, 0.8352, 0.8441]),
    ("3v6_asymmetric", [0.61, 0.70, 0.64], [0.66, 0.72, 0.69, 0.75, 0.63, 0.71]),
    ("ties_dyadic", [0.5, 0.25, 0.75, 0.5], [0.5, 0.75, 0.875, 0.75, 0.5]),
    ("2v3", [0.30, 0.33], [0.40, 0.35, 0.38]),
    ("4v4_overlap", [0.52, 0.58, 0.55, 0.61], [0.54, 0.60, 0.57, 0.59]),
]


def perm_case(name, a, b):
    stat = lambda x, y, axis: np.mean(y, axis=axis) - np.mean(x, axis=axis)
    r = st.permutation_test((a, b), stat, permutation_type="independent", n_resamples=np.inf,
                            alternative="two-sided", vectorized=True)
    null = np.asarray(r.null_distribution)
    obs = float(r.statistic)
    g = max(1e-14, abs(1e-14 * obs))  # scipy's tolerance (permutation_test source)
    ge = int(np.sum(null >= obs - g))
    le = int(np.sum(null <= obs + g))
    M = len(null)
    assert M == math.comb(len(a) + len(b), len(a))
    assert abs(min(1.0, 2 * min(ge, le) / M) - float(r.pvalue)) == 0.0
    return {"name": name, "a": list(map(float, a)), "b": list(map(float, b)), "diff": obs, "splits": M,
            "count_ge": ge, "count_le": le, "p": float(r.pvalue)}


def perm_cases():
    out = [perm_case(*c) for c in PERM]
    rs = np.random.RandomState(11)
    a = np.round(rs.normal(0.80, 0.02, 8), 4)
    b = np.round(rs.normal(0.815, 0.02, 9), 4)
    out.append(perm_case("8v9_exact_24310", a.tolist(), b.tolist()))
    # 10 v 10: C(20, 10) = 184,756 > 100,000 -> the C code runs Monte Carlo
    a = np.round(rs.normal(0.80, 0.02, 10), 4)
    b = np.round(rs.normal(0.812, 0.02, 10), 4)
    c = perm_case("10v10_monte_carlo", a.tolist(), b.tolist())
    c["c_samples"] = 100000
    p, R = c["p"], c["c_samples"]
    # p = 2 * tail: the standard error of 2 * (tail estimate) is 2 sqrt(t (1 - t) / R)
    t = p / 2
    c["tol"] = Z * 2 * math.sqrt(t * (1 - t) / R) + 4.0 / R
    out.append(c)
    return out


# ---------------------------------------------------------------- metrics

def metric_cases():
    rs = np.random.RandomState(3)
    out = []
    # CoLA-like binary predictions: mcc, f1 (positive class 1), accuracy
    gold = rs.randint(0, 2, 60)
    pred = np.where(rs.rand(60) < 0.7, gold, 1 - gold)
    out.append({"name": "binary_60", "task": "mrpc", "gold": gold.tolist(), "pred": pred.tolist(),
                "accuracy": float(accuracy_score(gold, pred)), "f1": float(f1_score(gold, pred)),
                "mcc": float(matthews_corrcoef(gold, pred))})
    gold = (rs.rand(41) < 0.3).astype(int)
    pred = np.where(rs.rand(41) < 0.6, gold, 1 - gold)
    out.append({"name": "binary_41_skewed", "task": "cola", "gold": gold.tolist(), "pred": pred.tolist(),
                "accuracy": float(accuracy_score(gold, pred)), "f1": float(f1_score(gold, pred)),
                "mcc": float(matthews_corrcoef(gold, pred))})
    # STS-B-like scores (float32), with ties (rounded to 0.25) for Spearman's average ranks
    g = f32(np.round(rs.uniform(0, 5, 70) * 4) / 4)
    p = f32(g + rs.normal(0, 1.1, 70))
    out.append({"name": "scores_70_ties", "task": "stsb", "gold": g.tolist(), "pred": p.tolist(),
                "pearson": float(st.pearsonr(p, g)[0]), "spearman": float(st.spearmanr(p, g)[0])})
    g = f32(rs.uniform(0, 5, 33))
    p = f32(0.3 * g + rs.normal(0, 1.0, 33))
    out.append({"name": "scores_33", "task": "stsb", "gold": g.tolist(), "pred": p.tolist(),
                "pearson": float(st.pearsonr(p, g)[0]), "spearman": float(st.spearmanr(p, g)[0])})
    return out


# ---------------------------------------------------------------- statistic M(b) - M(a), vectorised

def metric_vec(task, metric, pred, gold):
    """metric of pred [..., n] against gold [..., n] along the last axis"""
    if metric == "accuracy":
        return np.mean(pred == gold, axis=-1)
    if metric in ("f1", "mcc"):
        p, g = pred == 1, gold == 1
        tp = np.sum(p & g, axis=-1).astype(float)
        fp = np.sum(p & ~g, axis=-1).astype(float)
        fn = np.sum(~p & g, axis=-1).astype(float)
        tn = np.sum(~p & ~g, axis=-1).astype(float)
        if metric == "f1":
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, (tp * tn - fp * fn) / np.sqrt(den), 0.0)
    if metric in ("pearson", "spearman"):
        x, y = pred, gold
        if metric == "spearman":
            x, y = st.rankdata(x, axis=-1), st.rankdata(y, axis=-1)
        x = x - x.mean(axis=-1, keepdims=True)
        y = y - y.mean(axis=-1, keepdims=True)
        sxx, syy = np.sum(x * x, axis=-1), np.sum(y * y, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where((sxx > 0) & (syy > 0), np.sum(x * y, axis=-1) / np.sqrt(sxx * syy), 0.0)
    raise ValueError(metric)


def check_metric_vec(task, metric, pred, gold):
    """the vectorised metric agrees with sklearn / scipy on the observed data"""
    v = float(metric_vec(task, metric, np.asarray(pred), np.asarray(gold)))
    ref = {"accuracy": lambda: accuracy_score(gold, pred), "f1": lambda: f1_score(gold, pred),
           "mcc": lambda: matthews_corrcoef(gold, pred), "pearson": lambda: st.pearsonr(pred, gold)[0],
           "spearman": lambda: st.spearmanr(pred, gold)[0]}[metric]()
    assert abs(v - ref) < 1e-12, (metric, v, ref)


# ---------------------------------------------------------------- bootstrap

def boot_case(name, task, metric, gold, pa, pb, seed):
    gold, pa, pb = np.asarray(gold), np.asarray(pa), np.asarray(pb)
    check_metric_vec(task, metric, pa, gold)
    check_metric_vec(task, metric, pb, gold)

    def stat(a, b, g, axis=-1):
        return metric_vec(task, metric, b, g) - metric_vec(task, metric, a, g)

    d = float(stat(pa, pb, gold))
    res = st.bootstrap((pa, pb, gold), stat, paired=True, vectorized=True, n_resamples=R_REF, batch=20000,
                       method="percentile", confidence_level=0.95, random_state=np.random.RandomState(seed))
    dist = np.asarray(res.bootstrap_distribution)
    case = {"name": name, "task": task, "metric": metric, "gold": gold.tolist(), "pred_a": pa.tolist(),
            "pred_b": pb.tolist(), "alpha": 0.05, "diff": d, "samples_ref": R_REF, "c_samples": R_C,
            "ci_low": float(res.confidence_interval.low), "ci_high": float(res.confidence_interval.high)}
    for key, u in (("ci_low", 0.025), ("ci_high", 0.975)):
        s = math.sqrt(u * (1 - u) / R_C) + math.sqrt(u * (1 - u) / R_REF)
        case[key + "_min"] = float(np.quantile(dist, max(0.0, u - Z * s), method="lower"))
        case[key + "_max"] = float(np.quantile(dist, min(1.0, u + Z * s), method="higher"))
    cnt = int(np.sum(np.abs(dist - d) >= abs(d) - 1e-12))
    p = (cnt + 1) / (R_REF + 1)
    case["p_ref"] = p
    case["p_tol"] = Z * math.sqrt(p * (1 - p)) * (1 / math.sqrt(R_C) + 1 / math.sqrt(R_REF)) + 2.0 / R_C
    sd = float(res.standard_error)
    case["std_ref"] = sd
    case["std_tol"] = 6 * sd * (1 / math.sqrt(2 * R_C) + 1 / math.sqrt(2 * R_REF))
    return case


def boot_cases():
    rs = np.random.RandomState(5)
    out = []
    n = 300
    gold = rs.randint(0, 2, n)
    pa = np.where(rs.rand(n) < 0.80, gold, 1 - gold)
    pb = np.where(rs.rand(n) < 0.85, gold, 1 - gold)
    out.append(boot_case("sst2_accuracy_300", "sst2", "accuracy", gold, pa, pb, 101))
    n = 200
    gold = (rs.rand(n) < 0.3).astype(int)
    pa = np.where(rs.rand(n) < 0.70, gold, 1 - gold)
    pb = np.where(rs.rand(n) < 0.76, gold, 1 - gold)
    out.append(boot_case("cola_mcc_200", "cola", "mcc", gold, pa, pb, 102))
    n = 150
    g = f32(rs.uniform(0, 5, n))
    fa = f32(g + rs.normal(0, 1.4, n))
    fb = f32(g + rs.normal(0, 1.1, n))
    out.append(boot_case("stsb_pearson_150", "stsb", "pearson", g, fa, fb, 103))
    out.append(boot_case("stsb_spearman_150", "stsb", "spearman", g, fa, fb, 104))
    return out


# ---------------------------------------------------------------- approximate randomisation

def ar_case(name, task, metric, gold, pa, pb, exact, seed=0):
    gold, pa, pb = np.asarray(gold), np.asarray(pa), np.asarray(pb)
    check_metric_vec(task, metric, pa, gold)
    check_metric_vec(task, metric, pb, gold)

    def stat(a, b, axis=-1):
        return metric_vec(task, metric, b, gold) - metric_vec(task, metric, a, gold)

    kw = dict(n_resamples=np.inf) if exact else dict(n_resamples=R_REF, random_state=np.random.RandomState(seed))
    r = st.permutation_test((pa, pb), stat, permutation_type="samples", alternative="two-sided", vectorized=True,
                            batch=20000, **kw)
    p = float(r.pvalue)
    tol = Z * math.sqrt(p * (1 - p)) * (1 / math.sqrt(R_C) + (0 if exact else 1 / math.sqrt(R_REF))) + 2.0 / R_C
    return {"name": name, "task": task, "metric": metric, "gold": gold.tolist(), "pred_a": pa.tolist(),
            "pred_b": pb.tolist(), "diff": float(r.statistic), "exact": bool(exact), "p_ref": p,
            "samples_ref": None if exact else R_REF, "c_samples": R_C, "tol": tol}


def ar_cases():
    rs = np.random.RandomState(9)
    out = []
    n = 18  # 2^18 = 262,144 swaps, enumerated by scipy
    gold = rs.randint(0, 2, n)
    pa = np.where(rs.rand(n) < 0.55, gold, 1 - gold)
    pb = np.where(rs.rand(n) < 0.85, gold, 1 - gold)
    out.append(ar_case("accuracy_18_exact", "sst2", "accuracy", gold, pa, pb, True))
    n = 16
    g = f32(rs.uniform(0, 5, n))
    fa = f32(g + rs.normal(0, 2.0, n))
    fb = f32(g + rs.normal(0, 1.0, n))
    out.append(ar_case("pearson_16_exact", "stsb", "pearson", g, fa, fb, True))
    n = 250
    gold = (rs.rand(n) < 0.4).astype(int)
    pa = np.where(rs.rand(n) < 0.72, gold, 1 - gold)
    pb = np.where(rs.rand(n) < 0.77, gold, 1 - gold)
    out.append(ar_case("f1_250_monte_carlo", "mrpc", "f1", gold, pa, pb, False, seed=201))
    return out


def main():
    if not os.path.isdir("tests/fixtures"):
        sys.exit("run from the repo root (tests/fixtures missing)")
    x = np.random.RandomState(1).normal(0, 1, 37)
    ps = [0.0, 0.025, 0.1, 0.5, 0.77, 0.975, 1.0]
    fx = {
        "generator": "tools/reference/make_stats_fixture.py",
        "versions": {"scipy": scipy.__version__, "numpy": np.__version__, "sklearn": sklearn.__version__},
        "welch": welch_cases(),
        "permutation": perm_cases(),
        "metrics": metric_cases(),
        "quantile": {"x": np.sort(x).tolist(), "p": ps, "q": [float(np.percentile(x, 100 * p)) for p in ps]},
        "bootstrap": boot_cases(),
        "randomization": ar_cases(),
    }
    with open(OUT, "w") as f:
        json.dump(fx, f, indent=1)
        f.write("\n")
    for w in fx["welch"]:
        print("welch %-18s t %.17g df %.17g p %.17g" % (w["name"], w["t"], w["df"], w["p"]))
    for p in fx["permutation"]:
        print("perm  %-18s M %d ge %d le %d p %.17g" % (p["name"], p["splits"], p["count_ge"], p["count_le"], p["p"]))
    for b in fx["bootstrap"]:
        print("boot  %-18s d %.6f CI [%.6f, %.6f] p %.5f" % (b["name"], b["diff"], b["ci_low"], b["ci_high"], b["p_ref"]))
    for a in fx["randomization"]:
        print("ar    %-18s d %.6f p %.6f" % (a["name"], a["diff"], a["p_ref"]))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
