"""Synthetic benchmark of LGES against GIN and exploratory factor analysis (paper section 5).

Usage::

    nice python benchmarks/lges_synthetic.py [--quick] [--methods lges,lges_lr,gin,efa_corr,efa_none]
        [--experiments main,misspecified,delta] [--sizes 100,200,500,1000] [--graphs 20]
        [--n-jobs 2] [--out reports/benchmarks/lges_synthetic] [--fresh]

Design (the paper's section 5.1 / 5.3 / C.4; REFERENCE.md section 1):

* Graphs: seeds 0..G-1 of :func:`latentsem.simulate.gnfm.make_gnfm_dataset`
  (G = 20). The seed fixes the graph, its weights and noise variances; the
  same 20 graphs are used in every setting, with ONE data draw per graph,
  sample size and noise (the paper averages 20 graphs x 10 data seeds).
* ``main`` (Table 1): Gaussian linear data, N in {100, 200, 500, 1000}. GIN
  assumes non-Gaussian noise, so, as in the paper, GIN runs on uniform-noise
  data of the same graphs.
* ``misspecified`` (Table 2): uniform noise, and a leaky ReLU (alpha 0.8) on
  Gaussian data, N in {500, 1000}; every method sees the same data.
* ``delta`` (Table 4): LGES with ``delta`` in {5e-4, 1e-3, 2e-3, 4e-3, 1e-2},
  Gaussian data, N = 1000.
* Metrics: skeleton F1 (with precision, recall) and SHD between CPDAGs over
  all variables after matching latents (:func:`latentsem.metrics.latent.compare_structures`);
  mean (standard error over graphs) and the median wall-clock runtime per graph.
* The paper's own LGES (and GIN F1) numbers appear as fixed rows labelled
  "paper, reported".

Results accumulate: records of ``<out>.json`` that the current run does not
recompute (other methods, sizes, experiments) are kept, so the grid can be run
in pieces (``--methods gin --sizes 1000``) and LGES added later
(``--methods lges``); ``--resume`` also skips runs that already succeeded.
``--fresh`` starts from an empty file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make ``benchmarks._baselines`` importable
    sys.path.insert(0, str(ROOT))

SIZES = (100, 200, 500, 1000)
VARIANT_SIZES = (500, 1000)
DELTA_SIZE = 1000
DELTAS = (5e-4, 1e-3, 2e-3, 4e-3, 1e-2)
METHODS = ("lges", "lges_lr", "gin", "efa_corr", "efa_none")
EXPERIMENTS = ("main", "misspecified", "delta")
VARIANTS = (("uniform", None), ("gaussian", "leaky_relu"))
QUICK_GRAPHS, QUICK_SIZES = 5, (200, 1000)
DEFAULT_OUT = ROOT / "reports" / "benchmarks" / "lges_synthetic"
QUICK_OUT = ROOT / "reports" / "benchmarks" / "lges_synthetic_quick"

METHOD_LABELS = {
    "lges": "LGES (ours, default: criterion=\"auto\", 2 workers)",
    "lges_lr": "LGES (ours), criterion=\"lr\" (1 worker)",
    "gin": "GIN_MI (causal-learn)",
    "efa_corr": "EFA, factor correlations >= 0.3 as edges",
    "efa_none": "EFA, no latent edges",
}

# REFERENCE.md section 1: Tables 1, 2 and 4 of the LGES paper, mean (standard
# error) over 20 graphs x 10 data seeds. GIN: F1 only (Table 1).
PAPER_MAIN = {
    100: {"f1": (0.60, 0.01), "shd": (20.87, 0.72), "gin_f1": 0.27},
    200: {"f1": (0.72, 0.02), "shd": (14.03, 0.85), "gin_f1": 0.36},
    500: {"f1": (0.79, 0.02), "shd": (10.02, 0.69), "gin_f1": 0.42},
    1000: {"f1": (0.82, 0.02), "shd": (8.80, 0.70), "gin_f1": 0.47},
}
PAPER_VARIANTS = {
    ("uniform", None, 500): (0.78, 10.72), ("uniform", None, 1000): (0.79, 10.12),
    ("gaussian", "leaky_relu", 500): (0.68, 16.6), ("gaussian", "leaky_relu", 1000): (0.71, 15.0),
}
PAPER_DELTAS = {5e-4: (0.79, 10.85), 1e-3: (0.81, 9.52), 2e-3: (0.82, 8.80), 4e-3: (0.80, 9.85), 1e-2: (0.78, 11.13)}
PAPER_RUNTIME = "about 60 s per graph for LGES, about 20 s for GIN (paper, Xeon E5-2470, joblib)"


# ------------------------------------------------------------------ tasks
@dataclass(frozen=True)
class Task:
    """One method on one data set: graph ``seed``, ``n`` rows, noise and nonlinearity."""

    seed: int
    n: int
    noise: str
    nonlinearity: str | None
    method: str
    delta: float | None = None

    def key(self):
        return (self.seed, self.n, self.noise, self.nonlinearity, self.method, self.delta)


def record_key(record):
    return (record["seed"], record["n"], record["noise"], record["nonlinearity"], record["method"], record["delta"])


def main_noise(method):
    """Noise of the Table 1 data a method sees: GIN needs non-Gaussian noise."""
    return "uniform" if method == "gin" else "gaussian"


def build_tasks(methods, experiments, seeds, sizes):
    """The de-duplicated task list (GIN's Table 1 data is also Table 2's uniform data)."""
    tasks = {}

    def add(task):
        tasks.setdefault(task.key(), task)

    for method in methods:
        if "main" in experiments:
            for n in sizes:
                for seed in seeds:
                    add(Task(seed, n, main_noise(method), None, method))
        if "misspecified" in experiments:
            for n in (s for s in VARIANT_SIZES if s in sizes):
                for noise, nonlinearity in VARIANTS:
                    for seed in seeds:
                        add(Task(seed, n, noise, nonlinearity, method))
    if "delta" in experiments and "lges" in methods and DELTA_SIZE in sizes:
        for delta in DELTAS:
            for seed in seeds:
                add(Task(seed, DELTA_SIZE, "gaussian", None, "lges", delta))
    return list(tasks.values())


# -------------------------------------------------------------- execution
def learn(method, X, seed, delta=None):
    """Run one method on the frame ``X``; returns ``(Structure, extra info dict)``."""
    from benchmarks._baselines import efa_structure, gin_structure

    if method in ("lges", "lges_lr"):
        from latentsem.lges import LGES

        if method == "lges_lr":
            est = LGES(criterion="lr", n_jobs=1, random_state=seed).fit(X)
        elif delta is not None:  # Table 4: the paper's rule at a given delta
            est = LGES(delta=delta, n_jobs=1, random_state=seed).fit(X)
        else:  # the default, criterion="auto": its lr and rmsea searches side by side (run with --n-jobs 1)
            est = LGES(n_jobs=2, random_state=seed).fit(X)
        return est.model_, {"log_likelihood": float(est.log_likelihood_), "criterion_chosen": est.criterion_,
                            "delta_used": float(est.delta_), "runtime_reported": float(est.runtime_)}
    if method == "gin":
        return gin_structure(X), {}
    if method in ("efa_corr", "efa_none"):
        structure = efa_structure(X, latent_edges=method.split("_")[1], random_state=seed)
        return structure, {"n_factors": structure.metadata["n_factors"], "latent_edges": structure.metadata["latent_edges"]}
    raise ValueError(f"Unknown method {method!r}; use one of {list(METHODS)}.")


def run_task(task):
    """Simulate the task's data, run its method, compare with the truth: one JSON-ready record."""
    from latentsem.metrics.latent import compare_structures
    from latentsem.simulate.gnfm import make_gnfm_dataset

    X, truth = make_gnfm_dataset(task.seed, task.n, noise=task.noise, nonlinearity=task.nonlinearity)
    record = {**asdict(task), "n_latent_true": len(truth.latent), "n_observed": len(truth.observed)}
    started = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            estimate, extra = learn(task.method, X, task.seed, task.delta)
        runtime = time.perf_counter() - started
        comparison = compare_structures(truth, estimate)
        latent_level = compare_structures(truth, estimate, level="latent")
    except Exception as exc:  # noqa: BLE001 - a benchmark records a failed graph instead of losing the whole run
        return {**record, "f1": None, "precision": None, "recall": None, "shd": None, "shd_latent": None,
                "runtime": time.perf_counter() - started, "n_latent": None,
                "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    return {**record, "f1": comparison.f1, "precision": comparison.precision, "recall": comparison.recall,
            "shd": comparison.shd, "shd_latent": latent_level.shd, "runtime": runtime, "n_latent": len(estimate.latent),
            "true_edges": comparison.true_edges, "estimated_edges": comparison.estimated_edges,
            "n_warnings": len(caught), "error": None, "estimate": compact(estimate), **extra}


def compact(structure):
    """The estimate in a few keys (latents, groups, edges as [source, target, type]), so metrics can be recomputed."""
    return {"latent": list(structure.latent), "groups": [list(g) for g in structure.groups],
            "edges": [[e.source, e.target, e.type] for e in structure.edges]}


def run_tasks(tasks, n_jobs):
    from joblib import Parallel, delayed

    # Slow tasks first, so that the last worker is not left alone with a GIN N = 1000 run.
    ordered = sorted(tasks, key=lambda t: (not t.method.startswith("lges"), t.method != "gin", -t.n, t.seed))
    return Parallel(n_jobs=n_jobs)(delayed(run_task)(task) for task in ordered)


# ------------------------------------------------------------ aggregation
def summarize(records, method, n, noise, nonlinearity, delta=None):
    """Mean (SE) of F1 and SHD, mean precision / recall / latents, median runtime over graphs."""
    rows = [r for r in records if (r["method"], r["n"], r["noise"], r["nonlinearity"], r["delta"])
            == (method, n, noise, nonlinearity, delta)]
    done = [r for r in rows if r["error"] is None]
    if not rows:
        return None

    def mean_se(key):
        values = np.array([r[key] for r in done], dtype=float)
        if values.size == 0:
            return None, None
        se = values.std(ddof=1) / math.sqrt(values.size) if values.size > 1 else float("nan")
        return float(values.mean()), float(se)

    f1, f1_se = mean_se("f1")
    shd, shd_se = mean_se("shd")
    shd_latent, shd_latent_se = mean_se("shd_latent") if all(r.get("shd_latent") is not None for r in done) else (None, None)
    return {
        "method": method, "n": n, "noise": noise, "nonlinearity": nonlinearity, "delta": delta,
        "graphs": len(done), "failed": len(rows) - len(done),
        "f1": f1, "f1_se": f1_se, "shd": shd, "shd_se": shd_se, "shd_latent": shd_latent, "shd_latent_se": shd_latent_se,
        "precision": mean_se("precision")[0], "recall": mean_se("recall")[0],
        "runtime_median": float(np.median([r["runtime"] for r in done])) if done else None,
        "n_latent_mean": mean_se("n_latent")[0], "n_latent_true_mean": mean_se("n_latent_true")[0],
    }


def summaries(records):
    """Every (method, data setting) present in the records, aggregated."""
    settings = sorted({(r["method"], r["n"], r["noise"], r["nonlinearity"] or "", r["delta"] or 0.0) for r in records})
    return [summarize(records, m, n, noise, nl or None, d or None) for m, n, noise, nl, d in settings]


def fmt(value, se=None, digits=2):
    if value is None:
        return "–"
    text = f"{value:.{digits}f}"
    if se is not None and not math.isnan(se):
        text += f" ({se:.{digits}f})"
    return text


def data_label(noise, nonlinearity):
    return f"{noise}, leaky ReLU" if nonlinearity == "leaky_relu" else f"{noise}, linear"


def measured_row(s, label=None):
    if s is None:
        return None
    graphs = f"{s['graphs']} ({s['failed']} failed)" if s["failed"] else str(s["graphs"])
    return (f"| {s['n']} | {label or METHOD_LABELS[s['method']]} | {data_label(s['noise'], s['nonlinearity'])} | {graphs} | "
            f"{fmt(s['f1'], s['f1_se'])} | {fmt(s['precision'])} / {fmt(s['recall'])} | {fmt(s['shd'], s['shd_se'])} | "
            f"{fmt(s['shd_latent'], s['shd_latent_se'])} | "
            f"{fmt(s['runtime_median'], digits=1)} | {fmt(s['n_latent_mean'], digits=1)} / {fmt(s['n_latent_true_mean'], digits=1)} |")


HEADER = ("| N | method | data | graphs | skeleton F1 | precision / recall | SHD | SHD over single latents | median runtime (s) | latents found / true |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def main_table(records):
    lines = [HEADER]
    for n in SIZES:
        paper = PAPER_MAIN[n]
        lines.append(f"| {n} | LGES (paper, reported) | gaussian, linear | 20 x 10 seeds | {fmt(*paper['f1'])} | – | "
                     f"{fmt(*paper['shd'])} | – | ~60 | – |")
        for method in METHODS:
            row = measured_row(summarize(records, method, n, main_noise(method), None))
            if row:
                lines.append(row)
            if method == "lges":
                lines.append(f"| {n} | GIN (paper, reported) | non-Gaussian | 20 x 10 seeds | {paper['gin_f1']:.2f} | – | – | – | ~20 | – |")
    return "\n".join(lines)


def variants_table(records):
    lines = [HEADER]
    for n in VARIANT_SIZES:
        for noise, nonlinearity in VARIANTS:
            f1, shd = PAPER_VARIANTS[(noise, nonlinearity, n)]
            lines.append(f"| {n} | LGES (paper, reported) | {data_label(noise, nonlinearity)} | 20 x 10 seeds | {f1:.2f} | – | {shd:.2f} | – | – | – |")
            for method in METHODS:
                row = measured_row(summarize(records, method, n, noise, nonlinearity))
                if row:
                    lines.append(row)
    return "\n".join(lines)


def delta_table(records):
    lines = ["| delta | LGES (paper, reported) F1 / SHD | graphs | skeleton F1 | SHD | median runtime (s) | latents found / true |",
             "|---|---|---|---|---|---|---|"]
    for delta in DELTAS:
        f1, shd = PAPER_DELTAS[delta]
        s = summarize(records, "lges", DELTA_SIZE, "gaussian", None, delta)
        if s is None:
            lines.append(f"| {delta:g} | {f1:.2f} / {shd:.2f} | 0 | – | – | – | – |")
        else:
            lines.append(f"| {delta:g} | {f1:.2f} / {shd:.2f} | {s['graphs']} | {fmt(s['f1'], s['f1_se'])} | "
                         f"{fmt(s['shd'], s['shd_se'])} | {fmt(s['runtime_median'], digits=1)} | "
                         f"{fmt(s['n_latent_mean'], digits=1)} / {fmt(s['n_latent_true_mean'], digits=1)} |")
    default = summarize(records, "lges", DELTA_SIZE, "gaussian", None)
    if default is not None:
        lines.append(f"| our default: criterion=\"auto\" (lr test at alpha = 1/N or close fit, by BIC; no delta) | – | {default['graphs']} | "
                     f"{fmt(default['f1'], default['f1_se'])} | {fmt(default['shd'], default['shd_se'])} | "
                     f"{fmt(default['runtime_median'], digits=1)} | {fmt(default['n_latent_mean'], digits=1)} / "
                     f"{fmt(default['n_latent_true_mean'], digits=1)} |")
    return "\n".join(lines)


def seeds_note(seeds):
    described = f"seeds {seeds[0]}..{seeds[-1]}" if list(seeds) == list(range(seeds[0], seeds[-1] + 1)) else f"seeds {list(seeds)}"
    return (f"Graphs: {described} of `make_gnfm_dataset`'s graph generator ({len(seeds)} graphs), ONE data draw per "
            f"graph, N and noise (the paper uses 20 structures x 10 data seeds, so its standard errors are over 200 "
            f"runs and ours over {len(seeds)} graphs).")


NOTES = [
    "Standard error = sample standard deviation / sqrt(graphs). Runtime = wall-clock seconds per graph on a shared "
    "2-core machine, as many graphs at a time as --n-jobs (each run's setting is in the JSON's settings.runs: "
    "the LGES rows of 2026-12-06 ran one graph at a time, the default search with 2 workers); compare runtimes "
    "within this table only.",
    "GIN assumes non-Gaussian noise; as in the paper it runs on uniform-noise data of the same graphs in Table 1 "
    "(the same data as the Table 2 uniform rows). GIN_MI from causal-learn 0.1.4.8 with its HSIC dependence statistic "
    "computed from cached Gram matrices (`benchmarks/_baselines.cached_gin_dependence`; same statistic, same search). "
    "GIN_MI returns one latent per cluster and a complete DAG among latents in its causal order.",
    "EFA (what applied researchers run): number of factors by Horn's parallel analysis (correlation-matrix eigenvalues "
    "above the 95th percentile of 100 seeded normal data sets of the same shape), factor_analyzer minres extraction, "
    "oblimin rotation, item -> factor edges where |loading| >= 0.3 (each item keeps its largest loading); "
    "efa_corr joins factors whose |correlation| >= 0.3 by an undirected edge (oriented by factor order when the "
    "graph is not chordal), efa_none has no latent edges.",
    "Metrics over all variables, latent included, after matching estimated to true latents "
    "(`latentsem.metrics.latent.compare_structures`): skeleton F1 and SHD between CPDAGs. \"SHD\" compares the "
    "CPDAGs of the paper's states, whose latent part is a graph over groups of latents (Definition 5's O_LL deletes "
    "and orients edges between groups; each group is one node of the CPDAG, each member edge gets its group edge's "
    "mark). \"SHD over single latents\" takes the CPDAG over single latents instead, which also counts orientations "
    "at two-latent groups that no score can identify: a rotation of a group's latents turns {L1, L2} -> L3 into "
    "L3 -> {L1, L2} with the same item covariances (`tests/test_metrics_latent.py`). From the population covariance "
    "LGES reaches F1 1 on 31 of 36 graphs, all with SHD 0 over groups; 21 of them have SHD 2-14 over single latents.",
]


def one_latent_per_group_ceiling(seeds):
    """Mean F1 / SHD of the truth with each latent group merged into one latent.

    The best any method that gives a cluster a single latent (GIN_MI, EFA) can
    score on these graphs: true clusters, true group edges, one latent each.
    """
    from latentsem.metrics.latent import compare_structures
    from latentsem.model import Edge, Structure
    from latentsem.simulate.gnfm import random_gnfm

    f1, shd = [], []
    for seed in seeds:
        truth = random_gnfm(np.random.default_rng(seed))
        head = {name: group[0] for group in truth.groups for name in group}
        edges = {Edge(head[e.source], e.target if e.target in truth.observed else head[e.target]) for e in truth.edges}
        merged = Structure(truth.observed, [group[0] for group in truth.groups], sorted(edges, key=lambda e: (e.source, e.target)))
        result = compare_structures(truth, merged)
        f1.append(result.f1)
        shd.append(result.shd)
    return float(np.mean(f1)), float(np.mean(shd))


def markdown(records, settings):
    seeds = sorted({r["seed"] for r in records})
    ceiling = one_latent_per_group_ceiling(seeds) if seeds else None
    parts = [
        "# LGES synthetic benchmark (paper section 5)",
        "",
        f"Written by `benchmarks/lges_synthetic.py` on {settings['written']}; {len(records)} records "
        f"({sum(r['error'] is not None for r in records)} failed). Methods present: "
        f"{', '.join(sorted({r['method'] for r in records})) or 'none'}. Paper runtimes: {PAPER_RUNTIME}.",
        "",
        *([f"- {seeds_note(seeds)}"] if seeds else []),
        *[f"- {note}" for note in NOTES],
        *([f"- Ceiling of one-latent-per-cluster methods (GIN_MI, EFA) on these {len(seeds)} graphs: the truth with each "
           f"latent group merged into one latent, true clusters and group edges, scores F1 {ceiling[0]:.2f}, SHD "
           f"{ceiling[1]:.1f}; an empty estimate scores F1 0 and SHD = the number of true edges."] if ceiling else []),
        "",
        "## Table 1: Gaussian linear data (GIN: uniform noise)",
        "",
        main_table(records),
        "",
        "## Table 2: misspecified data, N = 500 and 1000",
        "",
        variants_table(records),
        "",
        "## Table 4: LGES sensitivity to delta, N = 1000",
        "",
        delta_table(records),
        "",
    ]
    failures = [r for r in records if r["error"] is not None]
    if failures:
        parts += ["## Failed runs", ""]
        parts += [f"- {r['method']} seed {r['seed']} N {r['n']} {r['noise']}"
                  f"{' + ' + r['nonlinearity'] if r['nonlinearity'] else ''}: {r['error']}" for r in failures]
        parts.append("")
    return "\n".join(parts)


def one_line_summary(records, out):
    parts = []
    for method in METHODS:  # each method at the largest N it has Table 1 results for
        sizes = sorted({r["n"] for r in records if r["method"] == method and r["noise"] == main_noise(method)
                        and r["nonlinearity"] is None and r["delta"] is None})
        if sizes:
            s = summarize(records, method, sizes[-1], main_noise(method), None)
            parts.append(f"{method} F1 {s['f1']:.2f} SHD {s['shd']:.1f} at N={sizes[-1]}" if s["f1"] is not None
                         else f"{method} failed at N={sizes[-1]}")
    failed = sum(r["error"] is not None for r in records)
    return f"lges_synthetic: {len(records)} records ({failed} failed); " + "; ".join(parts) + f"; wrote {out}.md/.json"


# -------------------------------------------------------------------- CLI
def parse_list(text, cast, allowed=None, name="value"):
    values = [cast(v.strip()) for v in text.split(",") if v.strip()]
    if allowed is not None:
        bad = [v for v in values if v not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"Unknown {name} {bad}; use some of {list(allowed)}.")
    return tuple(values)


def lges_available():
    try:
        import latentsem.lges  # noqa: F401
    except ImportError:
        return False
    return True


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", type=lambda t: parse_list(t, str, METHODS, "methods"), default=None,
                        help=f"comma-separated subset of {','.join(METHODS)} (default: all; lges only when latentsem.lges exists)")
    parser.add_argument("--experiments", type=lambda t: parse_list(t, str, EXPERIMENTS, "experiments"), default=EXPERIMENTS,
                        help=f"comma-separated subset of {','.join(EXPERIMENTS)}")
    parser.add_argument("--sizes", type=lambda t: parse_list(t, int, SIZES, "sizes"), default=None,
                        help="comma-separated sample sizes (default 100,200,500,1000; --quick 200,1000)")
    parser.add_argument("--graphs", type=int, default=None, help="number of graph seeds 0..G-1 (default 20; --quick 5)")
    parser.add_argument("--seeds", type=lambda t: parse_list(t, int), default=None,
                        help="comma-separated graph seeds, instead of 0..G-1 (to run a grid in pieces)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_GRAPHS} graphs, N in {QUICK_SIZES}, output *_quick")
    parser.add_argument("--n-jobs", type=int, default=2, help="graphs run in parallel (joblib processes)")
    parser.add_argument("--out", type=Path, default=None, help="output stem; writes STEM.md and STEM.json")
    parser.add_argument("--fresh", action="store_true", help="ignore the records already in STEM.json")
    parser.add_argument("--resume", action="store_true",
                        help="skip runs that already have a successful record in STEM.json (run a grid in pieces)")
    args = parser.parse_args(argv)
    if args.methods is None:
        args.methods = tuple(m for m in METHODS if not m.startswith("lges") or lges_available())
    elif any(m.startswith("lges") for m in args.methods) and not lges_available():
        parser.error("--methods lges needs latentsem.lges, which cannot be imported; leave lges out.")
    args.sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    args.graphs = args.graphs or (QUICK_GRAPHS if args.quick else 20)
    if args.graphs < 2:
        parser.error("--graphs must be at least 2 (standard errors need two graphs).")
    args.seeds = args.seeds if args.seeds is not None else tuple(range(args.graphs))
    args.out = args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)
    return args


def load_previous(path):
    """``(records, runs)`` of an earlier ``STEM.json``; empty when there is none."""
    if not path.is_file():
        return [], []
    payload = json.loads(path.read_text())
    return payload.get("records", []), payload.get("settings", {}).get("runs", [])


def main(argv=None):
    args = parse_args(argv)
    json_path, md_path = args.out.with_suffix(".json"), args.out.with_suffix(".md")
    tasks = build_tasks(args.methods, args.experiments, args.seeds, args.sizes)
    existing, runs = ([], []) if args.fresh else load_previous(json_path)
    if args.resume:
        done = {record_key(r) for r in existing if r["error"] is None}
        tasks = [t for t in tasks if t.key() not in done]
    wanted = {t.key() for t in tasks}
    kept = [r for r in existing if record_key(r) not in wanted]
    print(f"{len(tasks)} runs ({', '.join(args.methods)}; {', '.join(args.experiments)}; N {list(args.sizes)}; "
          f"{len(args.seeds)} graphs; {args.n_jobs} jobs); keeping {len(kept)} earlier records", file=sys.stderr)
    started = time.perf_counter()
    new = run_tasks(tasks, args.n_jobs)
    records = sorted(kept + new, key=lambda r: (r["method"], r["n"], r["noise"], str(r["nonlinearity"]),
                                                r["delta"] or 0.0, r["seed"]))
    written = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if new:  # the runs that produced the records, oldest first
        runs = runs + [{"written": written, "runs": len(new), "methods": list(args.methods),
                        "experiments": list(args.experiments), "sizes": list(args.sizes), "seeds": list(args.seeds),
                        "n_jobs": args.n_jobs, "wall_s": round(time.perf_counter() - started, 1)}]
    settings = {
        "written": written, "runs": runs,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    payload = {
        "benchmark": "lges_synthetic", "settings": settings,
        "notes": [seeds_note(sorted({r["seed"] for r in records}))] + NOTES if records else NOTES,
        "paper_reported": {
            "main": {str(n): v for n, v in PAPER_MAIN.items()},
            "variants": [{"noise": k[0], "nonlinearity": k[1], "n": k[2], "f1": v[0], "shd": v[1]} for k, v in PAPER_VARIANTS.items()],
            "delta": [{"delta": d, "f1": v[0], "shd": v[1]} for d, v in PAPER_DELTAS.items()],
        },
        "summary": summaries(records),
        "records": records,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(payload, indent=1) + "\n")
    text = markdown(records, settings)
    md_path.write_text(text)
    print(text)
    print(one_line_summary(records, args.out))


if __name__ == "__main__":
    main()
