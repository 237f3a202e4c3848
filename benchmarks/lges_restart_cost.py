"""Runtime of LGES's pair_restarts, side by side with the search without them.

Usage::

    nice python benchmarks/lges_restart_cost.py [--sizes 100,1000] [--graphs 20]
        [--out reports/benchmarks/lges_restart_cost]

For each graph seed (``make_gnfm_dataset(seed, N)``, Gaussian) the default
``LGES(random_state=seed, n_jobs=2)`` runs with ``pair_restarts=False`` and
then with ``pair_restarts=True``, one after the other in this process, so the two
medians and their ratio come from the same machine state. Prints and writes a
Markdown table (median wall seconds, the ratio of medians, the median
per-graph ratio, and F1 / SHD of both).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def measure(n, seeds):
    from latentsem.lges import LGES
    from latentsem.metrics.latent import compare_structures
    from latentsem.simulate.gnfm import make_gnfm_dataset

    rows = []
    for seed in seeds:
        X, truth = make_gnfm_dataset(seed, n)
        row = {"n": n, "seed": seed}
        for restarts in (False, True):
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = LGES(random_state=seed, n_jobs=2, pair_restarts=restarts).fit(X)
            key = "restarts" if restarts else "plain"
            result = compare_structures(truth, est.model_)
            row[key] = {"seconds": time.perf_counter() - started, "f1": result.f1, "shd": result.shd}
        rows.append(row)
        print(n, seed, row["plain"], row["restarts"], flush=True)
    return rows


def table(rows, sizes):
    lines = ["| N | graphs | median s without | median s with | ratio of medians | median per-graph ratio | "
             "F1 / SHD without | F1 / SHD with |", "|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        sel = [r for r in rows if r["n"] == n]
        plain = np.array([r["plain"]["seconds"] for r in sel])
        rest = np.array([r["restarts"]["seconds"] for r in sel])

        def fs(key):
            return (f"{np.mean([r[key]['f1'] for r in sel]):.2f} / {np.mean([r[key]['shd'] for r in sel]):.2f}")

        lines.append(f"| {n} | {len(sel)} | {np.median(plain):.1f} | {np.median(rest):.1f} | "
                     f"{np.median(rest) / np.median(plain):.2f} | {np.median(rest / plain):.2f} | {fs('plain')} | {fs('restarts')} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--graphs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks" / "lges_restart_cost")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = [row for n in sizes for row in measure(n, range(args.graphs))]
    text = table(rows, sizes)
    print(text)
    args.out.with_suffix(".md").write_text(
        "# Runtime of LGES pair_restarts (`benchmarks/lges_restart_cost.py`)\n\n"
        "Default LGES (criterion=\"auto\", n_jobs=2), Gaussian data of `make_gnfm_dataset(seed, N)`, "
        "with and without `pair_restarts`, one after the other per graph in one process "
        f"(wall seconds on this machine; written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).\n\n"
        + text + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
