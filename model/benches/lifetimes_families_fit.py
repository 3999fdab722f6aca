#!/usr/bin/env python3
"""Times the reference implementation (Python `lifetimes`) of one purchase
family on the summaries the Rust bench `families_vs_lifetimes` wrote:
ModifiedBetaGeoFitter or ParetoNBDFitter with default settings.

Usage: lifetimes_families_fit.py {mbgnbd|pareto_nbd} SUMMARIES.csv [ROWS]
  CSV columns: frequency,recency,T (one row per customer).
  ROWS: use only the first ROWS customers (for when 1M takes too long).
Prints one JSON object on stdout: parameters, log-likelihood, seconds.

Environment: see model/fixtures/generate_fixtures.py (lifetimes 0.11.3,
numpy<2, pandas<2.2, scipy<1.14 on Python 3.11).
"""
import json
import sys
import time
import warnings

import numpy as np
import pandas as pd
from lifetimes import ModifiedBetaGeoFitter, ParetoNBDFitter

warnings.simplefilter("ignore")


def main():
    family, path = sys.argv[1], sys.argv[2]
    rows = int(sys.argv[3]) if len(sys.argv) > 3 else None
    df = pd.read_csv(path, nrows=rows)
    x, tx, T = (df[c].values.astype(float) for c in ("frequency", "recency", "T"))
    started = time.perf_counter()
    if family == "mbgnbd":
        fitter = ModifiedBetaGeoFitter().fit(x, tx, T)
        seconds = time.perf_counter() - started
        p = fitter.params_
        ll = -ModifiedBetaGeoFitter._negative_log_likelihood(
            np.log([p["r"], p["alpha"], p["a"], p["b"]]), x, tx, T, np.ones(len(x)), 0.0) * len(x)
    else:
        fitter = ParetoNBDFitter().fit(x, tx, T)
        seconds = time.perf_counter() - started
        p = fitter.params_
        params = (p["r"], p["alpha"], p["s"], p["beta"])
        ll = np.sum(ParetoNBDFitter._conditional_log_likelihood(params, x, tx, T))
    print(json.dumps({
        "family": family,
        "customers": len(x),
        "params": {k: float(v) for k, v in p.items()},
        "log_likelihood": float(ll),
        "seconds": seconds,
    }))


if __name__ == "__main__":
    main()
