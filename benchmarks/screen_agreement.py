"""Do the decision path's decisions match exact refits? Phase 1's first step on simulated graphs.

Usage::

    nice python benchmarks/screen_agreement.py [--seeds 20-31] [--max-items 20] [--bands 2 3 6]
        [--out reports/benchmarks/screen_agreement]

Design:

* Single core (BLAS threads set to 1 before numpy is imported).
* Graphs: ``random_gnfm(seed)`` (default settings) for each seed of ``--seeds``
  with at most ``--max-items`` items; N = 1000 Gaussian rows
  (``simulate_data``, random_state 1000 + seed), standardized: S is the
  correlation matrix with divisor N (as ``benchmarks/score_speed.py``).
* State: LGES's initial state (Definition 3), m = floor(p/2), parent optimum
  ``efa_ml`` polished by ``fit_specs``.
* Candidates: every line-13 pair at k = 1 (items {i, j} keep only latent 0).
* Exact decision: ``fit_specs`` from ``candidate_starts(parent, mask, n_random=1,
  random_state=k)`` with ``f_lower=f_parent``, accepted when
  ``f <= f_parent + t``.
* Decision path: ``latentsem.screen.decide_deletions`` with the same seeds, at
  each band of ``--bands``, at LGES's LR tolerance (``criterion="lr"``:
  chi2_{1 - 1/N}(p - 3) / 2N for a pair) and at the paper's delta
  (0.25 log N / N).

A refitted candidate's decision equals the exact one by construction (early
acceptance is sound, and a rejection runs the same starts to the end), so
every difference comes from a candidate that the screen decided alone.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # single core; must precede the numpy import

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "reports" / "benchmarks" / "screen_agreement"
N_ROWS = 1000


def seed_range(text):
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def problem(seed):
    """S, parents, the initial state's optimum and f, the pair masks."""
    from latentsem.score import efa_ml, fit_specs
    from latentsem.screen import pair_masks
    from score_speed import standardized_covariance  # the speed benchmark's data recipe

    truth = _graph(seed)
    S = standardized_covariance(truth, N_ROWS, 1000 + seed)
    p = S.shape[0]
    m = p // 2
    parents = np.tril(np.ones((m, m), dtype=bool), -1)
    f, params, _, _ = fit_specs(np.ones((1, p, m), dtype=bool), parents, S, [efa_ml(S, m)])
    return truth, S, parents, params[0], float(f[0]), pair_masks(p, m)


def _graph(seed):
    from latentsem.simulate.gnfm import random_gnfm

    return random_gnfm(seed)


def tolerances(p):
    from scipy.stats import chi2

    return {"lr": float(chi2.ppf(1 - min(0.05, 1 / N_ROWS), p - 3) / (2 * N_ROWS)),
            "delta": 0.25 * math.log(N_ROWS) / N_ROWS}


def run_graph(seed, bands):
    from latentsem.score import candidate_starts, fit_specs
    from latentsem.screen import decide_deletions, within_tolerance

    t0 = time.process_time()
    truth, S, parents, parent, f_parent, masks = problem(seed)
    p = S.shape[0]
    K = len(masks)
    starts = [candidate_starts(parent, mask, n_random=1, random_state=k) for k, mask in enumerate(masks)]
    c0 = time.process_time()
    f_exact, _, _, _ = fit_specs(masks, parents, S, starts, f_lower=f_parent)
    exact_cpu = time.process_time() - c0
    drops = f_exact - f_parent
    out = {"seed": seed, "p": p, "groups": [list(g) for g in truth.groups], "n_pairs": K,
           "exact_cpu_ms_per_pair": exact_cpu / K * 1e3, "criteria": {}}
    for name, tol in tolerances(p).items():
        exact = within_tolerance(f_exact, f_parent, tol)
        per_band = {}
        for band in bands:
            c0 = time.process_time()
            d = decide_deletions(masks, parents, S, parent, f_parent, tol, band=band, random_state=np.arange(K))
            cpu = time.process_time() - c0
            wrong = np.flatnonzero(d.accept != exact)
            per_band[str(band)] = {
                "n_refitted": int(d.refitted.sum()), "n_wrong": int(wrong.size),
                "cpu_ms_per_pair": cpu / K * 1e3,
                "wrong": [{"pair": int(k), "exact_drop": float(drops[k]), "screen": float(d.screen[k]),
                           "exact_accepts": bool(exact[k])} for k in wrong],
            }
        out["criteria"][name] = {"tolerance": tol, "n_accepted_exact": int(exact.sum()), "bands": per_band}
    out["cpu_s"] = time.process_time() - t0
    return out


def totals(graphs, bands):
    tot = {}
    for name in ("lr", "delta"):
        for band in bands:
            rows = [g["criteria"][name]["bands"][str(band)] for g in graphs]
            tot[f"{name}@{band}"] = {
                "criterion": name, "band": band, "n_pairs": sum(g["n_pairs"] for g in graphs),
                "n_accepted_exact": sum(g["criteria"][name]["n_accepted_exact"] for g in graphs),
                "n_refitted": sum(r["n_refitted"] for r in rows), "n_wrong": sum(r["n_wrong"] for r in rows),
                "n_graphs_with_wrong": sum(r["n_wrong"] > 0 for r in rows),
                "cpu_ms_per_pair": float(np.mean([r["cpu_ms_per_pair"] for r in rows])),
            }
    return tot


def write_markdown(path, r):
    lines = [
        "# Decision path against exact refits: Phase 1's first step on simulated graphs",
        "",
        f"Written by `benchmarks/screen_agreement.py` on {r['written']}; {r['machine']}. Design: the script's "
        "docstring. Graphs: `random_gnfm(seed)` for seeds "
        f"{r['seeds'][0]}-{r['seeds'][-1]} with at most {r['max_items']} items ({len(r['graphs'])} graphs), "
        f"N = {N_ROWS}, every line-13 pair candidate at k = 1 on LGES's initial state. A decision is wrong when it "
        "differs from the exact refit's (`f_exact <= f_parent + t`, same starts).",
        "",
        "| tolerance | band | pairs | accepted by exact refits | refitted exactly | wrong decisions | graphs with a "
        "wrong decision | CPU ms per pair (decision) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in r["totals"].values():
        lines.append(f"| {t['criterion']} | {t['band']:g} | {t['n_pairs']} | {t['n_accepted_exact']} | "
                     f"{t['n_refitted']} | {t['n_wrong']} | {t['n_graphs_with_wrong']} | {t['cpu_ms_per_pair']:.3f} |")
    lines += ["", "## Per graph", "",
              "| seed | items | pairs | exact refit CPU ms per pair | t (lr) | accepted (lr) | t (delta) | "
              "accepted (delta) | wrong decisions (criterion@band: pair, exact drop, screen) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for g in r["graphs"]:
        wrong = "; ".join(
            f"{name}@{band}: " + ", ".join(f"{w['pair']} ({w['exact_drop']:.2e}, {w['screen']:.2e})"
                                           for w in b["wrong"])
            for name, c in g["criteria"].items() for band, b in c["bands"].items() if b["wrong"]) or "none"
        lines.append(f"| {g['seed']} | {g['p']} | {g['n_pairs']} | {g['exact_cpu_ms_per_pair']:.1f} | "
                     f"{g['criteria']['lr']['tolerance']:.2e} | {g['criteria']['lr']['n_accepted_exact']} | "
                     f"{g['criteria']['delta']['tolerance']:.2e} | {g['criteria']['delta']['n_accepted_exact']} | "
                     f"{wrong} |")
    lines.append("")
    Path(path).write_text("\n".join(lines))


def main(argv=None):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=seed_range, default=seed_range("20-31"), help="random_gnfm seeds, e.g. 20-31")
    parser.add_argument("--max-items", type=int, default=20)
    parser.add_argument("--bands", type=float, nargs="+", default=[2.0, 3.0, 6.0])
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)
    load_start = os.getloadavg()
    graphs = []
    for seed in args.seeds:
        if len(_graph(seed).observed) > args.max_items:
            continue
        g = run_graph(seed, args.bands)
        graphs.append(g)
        wrong = {f"{n}@{b}": x["n_wrong"] for n, c in g["criteria"].items() for b, x in c["bands"].items()}
        print(f"seed {seed}: {g['p']} items, {g['n_pairs']} pairs, wrong {wrong}, {g['cpu_s']:.1f} s", flush=True)
    r = {
        "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs shared with other jobs (load average "
                   f"{load_start[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end), python "
                   f"{platform.python_version()}, numpy {np.__version__}",
        "seeds": args.seeds, "max_items": args.max_items, "bands": args.bands,
        "totals": totals(graphs, args.bands), "graphs": graphs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(r, indent=1) + "\n")
    write_markdown(out.with_suffix(".md"), r)
    for t in r["totals"].values():
        print(f"{t['criterion']} band {t['band']:g}: {t['n_wrong']} wrong of {t['n_pairs']} "
              f"({t['n_refitted']} refitted)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
