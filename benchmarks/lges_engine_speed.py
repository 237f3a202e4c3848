"""LGES with the compiled general-path engine against an earlier commit's numpy engine, side by side.

Usage::

    nice python benchmarks/lges_engine_speed.py [--baseline 8b4c7c9] [--sizes 100,1000] [--graphs 20]
        [--out reports/benchmarks/lges_engine_speed]

The baseline commit is checked out into a temporary git worktree. Two worker
processes import latentsem, one from that worktree and one from this tree, and
each fits one small graph first (imports, numba's cache), untimed. Then, for
each N and graph seed (``make_gnfm_dataset(seed, N)``, Gaussian), both fit the
default ``LGES(random_state=seed, n_jobs=2)`` one after the other, so every
pair of times comes from the same machine state. Prints and writes a Markdown
table: median wall seconds of each, the ratio of medians, the median per-graph
ratio, F1 / SHD over groups of each, and on how many graphs the two found the
same model (the same edges, and BICs within 0.01: optimizer noise).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, sys, time, warnings
sys.path.insert(0, sys.argv[1])
import latentsem
assert latentsem.__file__.startswith(sys.argv[1]), latentsem.__file__
from latentsem.lges import LGES
from latentsem.metrics.latent import compare_structures
from latentsem.simulate.gnfm import make_gnfm_dataset

def fit(n, seed):
    X, truth = make_gnfm_dataset(seed, n)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = LGES(random_state=seed, n_jobs=2).fit(X)
    seconds = time.perf_counter() - started
    result = compare_structures(truth, est.model_)
    model = json.dumps(est.model_.to_dict()["edges"], sort_keys=True)
    return {"seconds": seconds, "f1": result.f1, "shd": result.shd, "bic": est.bic_, "model": model}

fit(1000, 2)   # untimed warm-up: imports, numba's cache, joblib's workers
print("ready", flush=True)
for line in sys.stdin:
    n, seed = map(int, line.split())
    print(json.dumps(fit(n, seed)), flush=True)
"""


class Worker:
    """A process that fits graphs with the latentsem found at ``path``."""

    def __init__(self, path):
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the worker for {path} did not start")

    def fit(self, n, seed):
        self.proc.stdin.write(f"{n} {seed}\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def measure(baseline_path, sizes, seeds):
    engines = {"baseline": Worker(baseline_path), "compiled": Worker(ROOT)}
    rows = []
    try:
        for n in sizes:
            for seed in seeds:
                row = {"n": n, "seed": seed, **{name: w.fit(n, seed) for name, w in engines.items()}}
                rows.append(row)
                print(n, seed, row["baseline"], row["compiled"], flush=True)
    finally:
        for worker in engines.values():
            worker.close()
    return rows


def table(rows, sizes):
    lines = ["| N | graphs | median s, baseline | median s, compiled | ratio of medians | median per-graph ratio | "
             "F1 / SHD, baseline | F1 / SHD, compiled | same model |", "|---|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        sel = [r for r in rows if r["n"] == n]
        old = np.array([r["baseline"]["seconds"] for r in sel])
        new = np.array([r["compiled"]["seconds"] for r in sel])
        same = sum(r["baseline"].get("model") == r["compiled"].get("model")
                   and abs(r["baseline"]["bic"] - r["compiled"]["bic"]) < 0.01 for r in sel)

        def fs(key):
            return f"{np.mean([r[key]['f1'] for r in sel]):.3f} / {np.mean([r[key]['shd'] for r in sel]):.2f}"

        lines.append(f"| {n} | {len(sel)} | {np.median(old):.2f} | {np.median(new):.2f} | "
                     f"{np.median(old) / np.median(new):.1f} | {np.median(old / new):.1f} | {fs('baseline')} | "
                     f"{fs('compiled')} | {same} of {len(sel)} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="8b4c7c9", help="git commit with the numpy engine")
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--graphs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks" / "lges_engine_speed")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        worktree = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(worktree), args.baseline],
                       check=True)
        try:
            rows = measure(worktree, sizes, range(args.graphs))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=False)
    text = table(rows, sizes)
    print(text)
    args.out.with_suffix(".md").write_text(
        "# LGES engine speed (`benchmarks/lges_engine_speed.py`)\n\n"
        f"Default LGES (criterion=\"auto\", pair_restarts, n_jobs=2) on Gaussian data of `make_gnfm_dataset(seed, N)`: "
        f"the numpy engine of commit {args.baseline} (baseline) and this tree's compiled general path "
        "(`latentsem/_lm.py`), one after the other per graph in two long-lived processes "
        f"(wall seconds on this 2-core machine; written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}). "
        "\"Same model\": the same edges and BICs within 0.01.\n\n" + text + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"baseline": args.baseline, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
