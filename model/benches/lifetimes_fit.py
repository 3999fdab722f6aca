#!/usr/bin/env python3
"""Times the reference implementation (Python `lifetimes`) on the summaries
the Rust bench wrote: BetaGeoFitter + GammaGammaFitter with default settings.

Usage: lifetimes_fit.py SUMMARIES.csv [ROWS]
  CSV columns: frequency,recency,T,monetary_value (one row per customer).
  ROWS: use only the first ROWS customers (for when 1M takes too long).
Prints one JSON object on stdout: parameters, log-likelihoods, seconds.

Environment: see model/fixtures/generate_fixtures.py (lifetimes 0.11.3,
numpy<2, pandas<2.2, scipy<1.14 on Python 3.11).
"""
import json
import sys
import time
import warnings

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter

warnings.simplefilter("ignore")


def main():
    path = sys.argv[1]
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else None
    df = pd.read_csv(path, nrows=rows)
    started = time.perf_counter()
    bgf = BetaGeoFitter().fit(df["frequency"], df["recency"], df["T"])
    bg_seconds = time.perf_counter() - started
    returning = df[(df["frequency"] > 0) & (df["monetary_value"] > 0)]
    started = time.perf_counter()
    ggf = GammaGammaFitter().fit(returning["frequency"], returning["monetary_value"])
    gg_seconds = time.perf_counter() - started
    p = bgf.params_
    ll = -BetaGeoFitter._negative_log_likelihood(
        np.log([p["r"], p["alpha"], p["a"], p["b"]]),
        df["frequency"].values, df["recency"].values, df["T"].values, np.ones(len(df)), 0.0) * len(df)
    q = ggf.params_
    gg_ll = -GammaGammaFitter._negative_log_likelihood(
        np.log([q["p"], q["q"], q["v"]]), returning["frequency"].values.astype(float),
        returning["monetary_value"].values, np.ones(len(returning)), 0.0) * len(returning)
    print(json.dumps({
        "customers": len(df),
        "bgnbd": {k: float(v) for k, v in p.items()},
        "bgnbd_log_likelihood": float(ll),
        "gamma_gamma": {k: float(v) for k, v in q.items()},
        "gamma_gamma_log_likelihood": float(gg_ll),
        "bgnbd_seconds": bg_seconds,
        "gamma_gamma_seconds": gg_seconds,
        "seconds": bg_seconds + gg_seconds,
    }))


if __name__ == "__main__":
    main()
