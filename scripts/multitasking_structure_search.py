"""Exhaustive structure search on the multitasking data (9 items, N = 202).

Screens generalized-N-factor-model structures (latents -> items, latent DAG,
"dag" semantics: latents without an edge independent; psi >= 0) with the
project's fast ML engine (latentsem.score.score_ML: chi2 = 2 N (f - f_sat)),
then the best ones can be confirmed with latentsem.fit.fit_model(latent_covariances="dag",
bounds=True). df is lavaan's count: 45 - npar, npar = #loadings + #latent edges + 9
(one loading per latent fixed, latent variances free) = 36 - #loadings - #edges.

Families
  (a)  3 triad latents, latent DAG with e edges + c cross-loadings, c + e in {2,3,4}
  (b)  triads + L4 with k in {2,3} children (any items, kept on their triads),
       4-latent DAG with e edges, plus c cross-loadings (triad items -> other triad
       latent), k + e + c in {2,3,4}
  (c1) two-latent group {A, B} (non-adjacent, both load on the same g >= 4 pure items),
       the other items on one latent or on their triads' latents; only df <= 23 possible
  (c2) any partition of the 9 items into 3 clusters (sizes >= 2), latent DAG e in {2,3}
  (c3) any partition into 4 clusters (sizes >= 2), latent DAG e in {2,3,4}
  (c5) bifactor-like: G on all 9 items + one specific latent on 2-4 items (edge to G or not)
       or two specific latents on 2 items each (df 23-25)
  (b4) triads + L4 on any 4 items, no latent edges (df 23)
  (c4) partitions into 3, 4 or 5 clusters with single-item clusters allowed, latent DAG
       e in {2,3} (3 clusters), {2,3,4} (4 clusters) or connected e = 4 (5 clusters)
       (c2/c3/c4: partitions whose complete latent DAG (a lower bound on chi2 of every
        sub-DAG) is already worse than the current model's 61.445 are pruned; for 5
        clusters (df 23 only) the bound is 50, above the best df-23 chi2 of (a)-(c4))

Run:  nice python scripts/multitasking_structure_search.py [a b c1 c2 c3 c5 b4 c4_3 c4_4 c4_5 | c4_5:START:STOP]
      (writes candidates_<families>.json under $LATENTSEM_SEARCH_OUT, default the temp directory;
      session 4 ran every family, c4_5 in chunks "c4_5:START:STOP", about 1.5 CPU-hours in all)
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path
import json
import math
import sys
import time
import warnings

import numpy as np

from latentsem.datasets import load_dataset
from latentsem.fit import baseline_chi_square, cfi, fit_model, rmsea, tli, truncate3, _chi2_sf
from latentsem.graph import dag_to_cpdag, has_directed_cycle, is_connected
from latentsem.model import Structure
from latentsem.score import saturated_f, score_ML

OUT = os.environ.get("LATENTSEM_SEARCH_OUT", tempfile.gettempdir())  # candidates_*.json are large (MBs)
data = load_dataset("multitasking")
ITEMS = list(data.columns)
N = data.n
S = np.cov(data.frame[ITEMS].to_numpy(float), rowvar=False, bias=True)
F_SAT = saturated_f(S)
CHI0, DF0 = baseline_chi_square(S, N)
TRIADS = [(0, 1, 2), (3, 4, 5), (6, 7, 8)]
TRIAD_OF = {i: t for t, tri in enumerate(TRIADS) for i in tri}
SHORT = ["SN", "SL", "SF", "EN", "EL", "EF", "A1", "A2", "A3"]
CURRENT_CHI2 = 61.445  # refit below


# ------------------------------------------------------------------ DAG classes
def dag_classes(m, e):
    """One representative DAG (m x m bool, D[i, j]: i -> j) per Markov equivalence class with e edges."""
    pairs = list(itertools.combinations(range(m), 2))
    reps = {}
    for skel in itertools.combinations(pairs, e):
        for orient in itertools.product((0, 1), repeat=e):
            D = np.zeros((m, m), bool)
            for (a, b), o in zip(skel, orient):
                if o == 0:
                    D[a, b] = True
                else:
                    D[b, a] = True
            if has_directed_cycle(D):
                continue
            cpdag = dag_to_cpdag(D)                    # one key per Markov equivalence class
            reps.setdefault(cpdag[0].tobytes() + cpdag[1].tobytes(), D)
    return list(reps.values())


# ------------------------------------------------------------------ scoring
def make_structure(L, D):
    m = L.shape[1]
    latent = [f"L{j + 1}" for j in range(m)]
    return Structure.from_masks(ITEMS, latent, L, directed=D)


def chi2_of(L, D, restarts=4, seed=0):
    r = score_ML(make_structure(L, D), S, N, n_restarts=restarts, random_state=seed)
    return 2 * N * (r.f - F_SAT)


def df_of(L, D):
    return 36 - int(L.sum()) - int(D.sum())


def indices(chi2, df):
    return {"rmsea": truncate3(rmsea(chi2, df, N)), "cfi": truncate3(cfi(chi2, df, CHI0, DF0)),
            "tli": truncate3(tli(chi2, df, CHI0, DF0))}


def describe(L, D):
    m = L.shape[1]
    parts = []
    for j in range(m):
        parts.append(f"L{j + 1}:" + ",".join(SHORT[i] for i in np.flatnonzero(L[:, j])))
    arrows = [f"L{a + 1}->L{b + 1}" for a, b in zip(*np.nonzero(D))]
    return " ".join(parts) + " | " + (" ".join(arrows) if arrows else "no latent edges")


def triad_mask(m=3):
    L = np.zeros((9, m), bool)
    for t, tri in enumerate(TRIADS):
        L[list(tri), t] = True
    return L


records = []


def record(family, L, D, chi2):
    records.append({"family": family, "df": df_of(L, D), "chi2": float(chi2), "desc": describe(L, D),
                    "L": L.astype(int).tolist(), "D": D.astype(int).tolist()})


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


CROSS = [(i, t) for i in range(9) for t in range(3) if TRIAD_OF[i] != t]


def family_a():
    L0 = triad_mask(3)
    for total in (2, 3, 4):
        for e in range(0, 4):
            c = total - e
            if c < 0:
                continue
            for D in dag_classes(3, e):
                for cross in itertools.combinations(CROSS, c):
                    L = L0.copy()
                    for i, t in cross:
                        L[i, t] = True
                    record("a", L, D, chi2_of(L, D))
        log(f"(a) c+e={total} done, {len(records)} fits so far")


def family_b():
    L0 = triad_mask(4)
    classes = {e: dag_classes(4, e) for e in range(3)}
    n0 = len(records)
    for k in (2, 3):
        for kids in itertools.combinations(range(9), k):
            for total in (2, 3, 4):
                for c in range(0, total - k + 1):
                    e = total - k - c
                    for D in classes[e]:
                        for cross in itertools.combinations(CROSS, c):
                            L = L0.copy()
                            L[list(kids), 3] = True
                            for i, t in cross:
                                L[i, t] = True
                            record("b", L, D, chi2_of(L, D))
        log(f"(b) k={k} done, {len(records) - n0} fits")


def family_b4():
    """Triads + L4 on k = 4 items (a general/method factor), no latent edges: df 23."""
    n0 = len(records)
    L0 = triad_mask(4)
    D = np.zeros((4, 4), bool)
    for kids in itertools.combinations(range(9), 4):
        L = L0.copy()
        L[list(kids), 3] = True
        record("b4", L, D, chi2_of(L, D))
    log(f"(b4) done, {len(records) - n0} fits")


def family_c5():
    """Bifactor-like: G loads on all 9 items, plus one or two specific latents on 2-4 items.

    Specific latents independent of G and of each other (no edges), or one specific
    latent joined to G by an edge. df = 27 - sum(k) - e.
    """
    n0 = len(records)
    pairs = list(itertools.combinations(range(9), 2))
    for k in (2, 3, 4):
        for kids in itertools.combinations(range(9), k):
            for e in (0, 1):
                if 27 - k - e < 23:
                    continue
                L = np.zeros((9, 2), bool)
                L[:, 0] = True
                L[list(kids), 1] = True
                D = np.zeros((2, 2), bool)
                D[0, 1] = e == 1
                record("c5", L, D, chi2_of(L, D))
    for a, b in itertools.combinations(pairs, 2):  # two specific latents on 2 items each: df 23
        L = np.zeros((9, 3), bool)
        L[:, 0] = True
        L[list(a), 1] = True
        L[list(b), 2] = True
        record("c5", L, np.zeros((3, 3), bool), chi2_of(L, np.zeros((3, 3), bool)))
    log(f"(c5) done, {len(records) - n0} fits")


def family_c1():
    n0 = len(records)
    for g in itertools.combinations(range(9), 4):
        rest = [i for i in range(9) if i not in g]
        # rest on one latent
        L = np.zeros((9, 3), bool)
        L[list(g), 0] = L[list(g), 1] = True
        L[rest, 2] = True
        record("c1", L, np.zeros((3, 3), bool), chi2_of(L, np.zeros((3, 3), bool)))
        # rest grouped by triad
        ts = sorted({TRIAD_OF[i] for i in rest})
        L = np.zeros((9, 2 + len(ts)), bool)
        L[list(g), 0] = L[list(g), 1] = True
        for j, t in enumerate(ts):
            L[[i for i in rest if TRIAD_OF[i] == t], 2 + j] = True
        D = np.zeros((L.shape[1],) * 2, bool)
        record("c1", L, D, chi2_of(L, D))
    log(f"(c1) done, {len(records) - n0} fits")


def partitions(items, k, min_size=2):
    """Set partitions of ``items`` into exactly k blocks of size >= min_size (canonical order)."""
    items = list(items)
    def rec(i, blocks):
        if i == len(items):
            if len(blocks) == k and all(len(b) >= min_size for b in blocks):
                yield [tuple(b) for b in blocks]
            return
        remaining = len(items) - i
        if len(blocks) + remaining < k:
            return
        for b in blocks:
            b.append(items[i])
            yield from rec(i + 1, blocks)
            b.pop()
        if len(blocks) < k:
            blocks.append([items[i]])
            yield from rec(i + 1, blocks)
            blocks.pop()
    yield from rec(0, [])


def family_partitions(k, edges, tag, min_size=2, skip_min=None, trees_only=False, lb_restarts=4, chunk=None):
    full = np.triu(np.ones((k, k), bool), 1)
    classes = {e: dag_classes(k, e) for e in edges}
    if trees_only:
        classes = {e: [D for D in cl if is_connected(D | D.T)] for e, cl in classes.items()}
        log(f"({tag}) {sum(map(len, classes.values()))} connected DAG classes over {k} latents")
    n_part = n_kept = 0
    n0 = len(records)
    for index, blocks in enumerate(partitions(range(9), k, min_size)):
        if chunk is not None and not chunk[0] <= index < chunk[1]:
            continue
        if skip_min is not None and min(len(b) for b in blocks) >= skip_min:
            continue  # already enumerated by (c2)/(c3)
        n_part += 1
        L = np.zeros((9, k), bool)
        for j, b in enumerate(blocks):
            L[list(b), j] = True
        lb = chi2_of(L, full, restarts=lb_restarts)
        if df_of(L, full) in (23, 24, 25):
            record(tag, L, full, lb)
        if lb > (50.0 if trees_only else CURRENT_CHI2):  # 5 latents: only df 23 is possible; 50 > best df-23 found
            continue
        n_kept += 1
        for e in edges:
            if e == full.sum():
                continue
            for D in classes[e]:
                record(tag, L, D, chi2_of(L, D))
        if trees_only:
            log(f"  survivor {blocks}: LB {lb:.3f}")
    log(f"({tag}) {n_part} partitions, {n_kept} survive the bound, {len(records) - n0} fits")


def main():
    global CURRENT_CHI2
    cur = Structure.from_json(Path(__file__).resolve().parents[1] / "reports" / "multitasking" / "model.json")
    r = score_ML(cur, S, N, random_state=0)
    CURRENT_CHI2 = 2 * N * (r.f - F_SAT)
    log(f"current model chi2 = {CURRENT_CHI2:.3f}")
    which = sys.argv[1:] or ["a", "b", "c1", "c2", "c3"]
    if "a" in which:
        family_a()
    if "b" in which:
        family_b()
    if "c1" in which:
        family_c1()
    if "c2" in which:
        family_partitions(3, (2, 3), "c2")
    if "c3" in which:
        family_partitions(4, (2, 3, 4), "c3")
    if "c5" in which:
        family_c5()
    if "b4" in which:
        family_b4()
    # partitions with single-item latents (a latent standing in for one item)
    if "c4_3" in which:
        family_partitions(3, (2, 3), "c4", min_size=1, skip_min=2)
    if "c4_4" in which:
        family_partitions(4, (2, 3, 4), "c4", min_size=1, skip_min=2)
    chunk = None
    for w in which:  # c4_5:START:STOP does partitions START..STOP-1 only (resumable chunks)
        if w.startswith("c4_5:"):
            chunk = tuple(int(x) for x in w.split(":")[1:])
            which = [*which, "c4_5"]
    if "c4_5" in which:
        # 5 latents, <= 4 edges: only spanning trees (e = 4) connect every item block; a
        # disconnected latent graph makes item blocks uncorrelated (chi2 > 140 in family (a)).
        family_partitions(5, (4,), "c4", min_size=1, trees_only=True, lb_restarts=2, chunk=chunk)
    name = "_".join(w.replace(":", "-") for w in which if w != "c4_5" or chunk is None)
    with open(f"{OUT}/candidates_{name}.json", "w") as fh:
        json.dump(records, fh)
    log(f"wrote {len(records)} records")


if __name__ == "__main__":
    main()
