"""Regenerate the real-data reports: literature models, LGES-discovered models and the summary table.

One command rebuilds everything (about 12 minutes on a 2-core machine; run it niced)::

    nice python scripts/make_real_reports.py

It writes ``reports/<name>/`` for bigfive, bigfive50, burnout and multitasking
(``build_report`` output: report.html, report.md, fit.json, model.json, SVG
diagrams), ``reports/real_data.json`` (every measured figure) and
``reports/real_data.md`` (the summary across data sets). ``--datasets a,b``
reruns only those data sets and merges them into the existing summary.

Settings rule (the same for every data set, stated in every report): LGES runs
with ``criterion="auto"`` (``latentsem discover``'s default): searches with
the likelihood-ratio test (``"lr"``, alpha = min(0.05, 1/N), 0.01 and 0.05) and one with the
close-fit rule (``"rmsea"``, epsilon = 0.05), keeping the model with the lowest
BIC. Reason: at tens of thousands of respondents the likelihood-ratio test
rejects every exact constraint of a real questionnaire (LGES with ``"lr"``
finds 0 latents on Big Five), whereas at a few hundred it is the paper's
consistent rule; BIC decides between the two models instead of a sample-size
switch. The sensitivity table reruns every data set with ``"lr"`` and with
``"rmsea"`` at epsilon 0.04, 0.05 and 0.06, so the choice is visible.

All fits use the paper's Table-3 convention: dag latent covariances (latents
without an edge independent), variances bounded at >= 0, RMSEA / CFI / TLI
truncated to 3 decimals where compared with Table 3.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
DATASETS = ROOT / "datasets"
SEED = 0
RULE = ("auto", 0.05)               # criterion, epsilon of its "rmsea" search
# The rule's run uses LGES's default pair_restarts (session 5 measured it on every data set: bigfive50 with it
# takes about 2 minutes, inside its 10-minute budget). The sensitivity grid runs without it: each of its searches
# would take minutes on Big Five (172 s for the 25 items instead of 6 s), and the grid only shows how the
# criterion and epsilon move the model.
PAIR_RESTARTS = True
SENSITIVITY_PAIR_RESTARTS = False
# Session 8 made regroup (a BIC search over the clustering after the search) LGES's default. These reports were
# written before it and have not been rerun with it yet (reports/benchmarks/lges_changes.md section 12 records what
# it changes on each data set); REGROUP = False reproduces them.
REGROUP = False
SENSITIVITY = (("lr", None), ("rmsea", 0.04), ("rmsea", 0.05), ("rmsea", 0.06))
# Settings left out of the sensitivity grid, with the reason (printed in the summary).
SENSITIVITY_SKIPPED = {
    "bigfive50": {("rmsea", 0.04): "not run: on the 25-item set epsilon 0.04 took ~100x as long as 0.05 "
                                   "(949 s vs 10 s in the recorded run); on 50 items (0.05: 150-380 s) that "
                                   "exceeds the 10-minute budget"},
}
RULE_TEXT = ('criterion="auto": LGES searches with criterion="lr" (alpha = min(0.05, 1/N), 0.01 and 0.05) and with '
             f'criterion="rmsea" (epsilon = {RULE[1]}) and keeps the model with the lowest BIC; max_group_size=3, '
             "n_exact_phase2=8, random_state=0 everywhere; pair_restarts=True (the default) for the reported "
             "model, pair_restarts=False in the sensitivity grid; regroup=False (these reports predate it)")

# The LGES paper's Table 3 (Dong et al., arXiv 2510.04378): RMSEA / CFI / TLI, dag semantics, truncated to 3 dp.
PAPER_LGES = {
    "bigfive": (0.054, 0.874, 0.855),
    "burnout": (0.067, 0.876, 0.865),
    "multitasking": (0.068, 0.977, 0.965),
}
# Table 3's literature rows as published.
PAPER_LITERATURE = {
    "bigfive": [("Goldberg (1993)", (0.072, 0.767, 0.746))],
    "burnout": [("Byrne (1994)", (0.096, 0.753, 0.727)), ("Byrne (2010)", (0.072, 0.861, 0.847))],
    "multitasking": [("Himi et al. (2019b)", (0.087, 0.962, 0.943))],
}
# Literature models: (report name, .lav file, paper's Table-3 row or None, how it relates to that row).
LITERATURE = {
    "bigfive": [("Goldberg (1993)", "bigfive/goldberg1993.lav", (0.072, 0.767, 0.746), "reproduces exactly")],
    "bigfive50": [("Goldberg simple structure (10 per trait)", None, None,
                   "not in Table 3: goldberg1993.lav extended to all 10 markers per trait (datasets/bigfive50.md)")],
    "burnout": [
        ("Byrne (1994)", "burnout/byrne1994.lav", (0.096, 0.753, 0.727), "reproduces exactly"),
        ("Byrne (2010) hypothesized", "burnout/byrne2010.lav", (0.072, 0.861, 0.847),
         "row not pinned: 8 combinations of extra exogenous covariances hit it (LITERATURE_MODELS.md)"),
        ("Byrne (2010) respecified", "burnout/byrne2010_respecified.lav", (0.072, 0.861, 0.847),
         "row not pinned (see above)"),
    ],
    "multitasking": [
        ("Himi (2019) second-order", "multitasking/himi2019_second_order.lav", (0.087, 0.962, 0.943),
         "closest principled match (Question disturbance at the zero bound)"),
        ("Himi (2019) three factors", "multitasking/himi2019.lav", (0.087, 0.962, 0.943),
         "under dag semantics the three factors are uncorrelated"),
    ],
}
# Literature models without a .lav file (path None above): lavaan syntax written here.
INLINE_SYNTAX = {
    "Goldberg simple structure (10 per trait)": "\n".join(
        f"{t} =~ " + " + ".join(f"{t}{i}" for i in range(1, 11)) for t in "ENACO") + "\n",
}
TITLES = {
    "bigfive": "Big Five (25 IPIP items, N = 19,718): discovered vs literature models",
    "bigfive50": "Big Five (all 50 IPIP items, N = 19,718): discovered model",
    "burnout": "Teacher burnout (32 parcels, N = 599): discovered vs literature models",
    "multitasking": "Multitasking (9 scores, N = 202): discovered vs literature models",
}
PREFIX_LABELS = {"bigfive", "bigfive50"}
# Reading of the diagnostics below (written from this script's seeded runs; the figures it quotes are measured
# ones, repeated here so the lead can act on them). Regenerate the runs before trusting a changed LGES.
DIAGNOSIS = {
    "bigfive": (
        "Meets the paper's row and beats the EFA -> CFA workflow of LITERATURE_MODELS.md (0.063 / 0.832 / 0.803) "
        "by a wide margin. BIC picks the rmsea search (lr finds no latent at N = 19,718). pair_restarts lowers "
        "its BIC by 5,501 (377,312.7 against 382,813.6; the reruns exclude the k = 1 pairs C1-C3, O1-O5 and "
        "O2-O4), and the model changes shape: 10 latents, four two-latent groups and two single latents. The "
        "groups are extraversion (all five E items, with A2, C2, N3), neuroticism (all five N items, with C4, "
        "C5, E4), conscientiousness (C1, C2, C3, C5 with N1, N2, N5 and O2, O3) and openness (O1, O2, O4 with "
        "A2, A3, N3); A1, A2, A4, A5 and O1, O3, O5 are single latents. A rotation inside a group fits "
        "equally, so each group, not its single latents, is what to interpret. The fit gain is bought with "
        "interpretability: mean purity falls from 0.73 to 0.64. The sensitivity grid's rmsea 0.05 row is "
        "the same search without restarts (7 latents, 0.048 / 0.909 / 0.884)."),
    "bigfive50": (
        "With all 50 items the rule finds 9 latents: one per trait for E, A and C, N split in two, and O in "
        "three small ones plus one shared with two C items (Openness's ten markers are the least homogeneous); "
        "mean purity 0.90. It fits far better than the orthogonal ten-markers-per-trait simple structure next "
        "to it and finishes in well under the 10-minute limit. The refinement step adds back an item's edge "
        "only when the group's standardized loading is at least min_loading = 0.2; without that floor 50 edges "
        "come back (RMSEA 0.044, CFI 0.887) and the latents lose their meaning."),
    "burnout": (
        "Beats the paper's row and the EFA -> CFA workflow of LITERATURE_MODELS.md (10 correlated factors, "
        "0.045 / 0.949 / 0.940) on all three indices, with latents independent unless joined by an edge. BIC "
        "picks the rmsea search (BIC 9987.3 against 10730.8 for lr, whose model, 0.066 / 0.882 / 0.868, only "
        "matched the paper's row). Every latent is one of Byrne's subscales or a merger of two: RC with WO (as "
        "Byrne 2010 does) and DM with SS; RA, CC, PS, SE, ELC, EE, DP and PA are their own latents. "
        "Cross-loadings: DM1 on RA and PS, EE1 on ELC, WO1 on EE."),
    "multitasking": (
        "Meets the paper's row on all three indices. Without pair_restarts (the sensitivity grid's lr row) LGES "
        "recovers Himi's structure: the speed, error and question triads, with Question as the common cause of "
        "Speed and Error (0.084 / 0.962 / 0.946 on 25 df, BIC 970.8). pair_restarts reruns the lr search "
        "without the k = 1 pair Speed_Number-Speed_Letter and lowers the BIC to 966.9 (975.9 for rmsea): the "
        "three speed items and AverageQus_Par1 become the children of a two-latent group (L3, L4), which "
        "together with the error latent causes the question latent (chi2 31.01 on 19 df). Speed needs two "
        "dimensions here; a rotation inside the group fits equally, so the group is what to interpret. The "
        "group has three pure children, one fewer than Definition 2 asks: Algorithm 1 line 17 accepts k + 1 = 3 "
        "items at k = 2 (requiring 2k was measured in session 5 and costs the synthetic benchmark F1 0.875 -> "
        "0.808 and SHD 13.45 -> 16.15 at N = 1000, so line 17 stays as published). Until session 5 the fit "
        "of this model stopped at chi2 51.02 (0.091 / 0.967 / 0.938): semopy started the group's two latents "
        "from identical values and kept them identical, a saddle where the group acts as one latent; "
        "latentsem.fit now fits latents that share their items from several starts, one of them its own ML "
        "optimum (tests/test_fit.py). Without "
        "restarts an exhaustive search (scripts/multitasking_structure_search.py, session 4: 47,464 "
        "structures, 23-25 df) finds no generalized N factor model that meets the row."),
}
INDEX_KEYS = ("chisq", "df", "rmsea", "cfi", "tli", "srmr", "bic")


def setting_key(criterion, epsilon) -> str:
    return criterion if criterion == "lr" else f"{criterion}, epsilon={epsilon:.2f}"


def dag_fit(structure, data):
    """The Table-3 convention's fit (dag semantics, bounded variances), its warnings left to the report."""
    from latentsem.fit import fit_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_model(structure, data, latent_covariances="dag", bounds=True)


def run_lges(data, criterion, epsilon, cache=None, name="", pair_restarts=PAIR_RESTARTS):
    """One LGES run (timed), or its cached result; returns (record, dag/bounded fit or None when no latent).

    ``record`` holds the discovered Structure, the runtime, alpha and the
    accepted steps (``history_``), so a cached run reports what the real one did.
    """
    from latentsem.lges import LGES
    from latentsem.model import Structure

    stem = f"{name}__{setting_key(criterion, epsilon).replace(', ', '_')}" + ("" if pair_restarts else "__no_restarts")
    path = Path(cache) / f"{stem}.json" if cache else None
    if path is not None and path.exists():
        saved = json.loads(path.read_text())
        record = dict(saved, model=Structure.from_dict(saved["model"]), cached=True)
    else:
        kwargs = {"criterion": criterion, "random_state": SEED, "pair_restarts": pair_restarts, "regroup": REGROUP}
        if epsilon is not None:
            kwargs["epsilon"] = epsilon
        est = LGES(**kwargs).fit(data)
        record = {"model": est.model_, "runtime_s": est.runtime_, "alpha": est.alpha_,
                  "criterion": est.criterion_, "criterion_bic": est.criterion_bic_,
                  "history": [step.to_dict() for step in est.history_],
                  "pair_restarts": pair_restarts, "excluded_pairs": [list(pair) for pair in est.excluded_pairs_]}
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(dict(record, model=est.model_.to_dict()), default=float))
    if not record["model"].latent:
        return record, None       # nothing to fit: the independence model (see independence_indices)
    return record, dag_fit(record["model"], data)


def indices_of(fit) -> dict:
    out = {k: float(fit.indices[k]) for k in INDEX_KEYS}
    out["df"] = int(out["df"])
    out["table3"] = fit.table3()
    out["converged"] = bool(fit.converged)
    out["heywood"] = list(fit.heywood)
    return out


def independence_indices(data) -> dict:
    """Indices of an empty discovered model (no latents): lavaan's independence model, CFI = TLI = 0."""
    from latentsem.fit import baseline_chi_square, rmsea, truncate3

    chisq, df = baseline_chi_square(data.covariance(), data.n)
    r = rmsea(chisq, df, data.n)
    return {"chisq": chisq, "df": int(df), "rmsea": r, "cfi": 0.0, "tli": 0.0, "srmr": None, "bic": None,
            "table3": {"rmsea": truncate3(r), "cfi": 0.0, "tli": 0.0}, "converged": True,
            "heywood": [], "note": "no latent found: every item independent (the baseline model)"}


def gap_to_target(table3: dict, target) -> dict:
    """Per index: measured (truncated) minus target, and whether it is at least as good."""
    rmsea, cfi, tli = target
    return {
        "rmsea": {"measured": table3["rmsea"], "target": rmsea, "gap": round(table3["rmsea"] - rmsea, 3),
                  "met": table3["rmsea"] <= rmsea},
        "cfi": {"measured": table3["cfi"], "target": cfi, "gap": round(table3["cfi"] - cfi, 3),
                "met": table3["cfi"] >= cfi},
        "tli": {"measured": table3["tli"], "target": tli, "gap": round(table3["tli"] - tli, 3),
                "met": table3["tli"] >= tli},
    }


def worst_items(fit, k=6) -> list:
    """Items with the largest mean absolute residual correlation (sample minus model-implied), worst first."""
    S = np.asarray(fit.sample_cov, dtype=float)
    Sigma = np.asarray(fit.implied_cov, dtype=float)
    d = np.sqrt(np.diag(S))
    e = np.sqrt(np.diag(Sigma))
    R = S / np.outer(d, d) - Sigma / np.outer(e, e)
    np.fill_diagonal(R, 0.0)
    score = np.abs(R).sum(axis=1) / (R.shape[0] - 1)
    names = list(fit.observed)
    order = np.argsort(-score)[:k]
    out = []
    for i in order:
        j = int(np.argmax(np.abs(R[i])))
        out.append({"item": names[i], "mean_abs_residual_r": round(float(score[i]), 4),
                    "worst_partner": names[j], "residual_r": round(float(R[i, j]), 3)})
    return out


def _with_edges(structure, edges):
    """``structure`` plus ``edges``, or None when that is no valid structure (e.g. a latent cycle)."""
    from latentsem.exceptions import StructureError
    from latentsem.model import Edge

    try:
        return structure.replace(edges=tuple(structure.edges) + tuple(Edge(a, b) for a, b in edges))
    except StructureError:
        return None


def single_additions(structure):
    """Every group -> item edge and every group -> group edge the structure lacks: {label: edges}."""
    groups = [list(g) for g in structure.groups]
    out = {}
    for g in groups:
        for item in structure.observed:
            if not any(item in structure.children(lat) for lat in g):
                out[f"{'&'.join(g)} -> {item}"] = [(lat, item) for lat in g]
    for a in groups:
        for b in groups:
            if a != b and not any(x in structure.neighbours(y) for x in a for y in b):
                out[f"{'&'.join(a)} -> {'&'.join(b)}"] = [(x, y) for x in a for y in b]
    return out


def forward_path(structure, data, fitted, steps=3) -> list:
    """What the next parameters would buy: greedy single additions, each refitted exactly.

    Each step adds the edge that lowers chi2 most (dag semantics, bounded
    variances), with its gain, p-value (chi-square, 1 df per added edge) and
    the BIC change; shown when the discovered model misses the paper's row, so
    the reader sees how many and how significant the missing parameters are.
    ``fitted`` is ``structure``'s own :func:`dag_fit`.
    """
    from scipy.stats import chi2 as chi2_dist

    path, current = [], fitted
    for _ in range(steps):
        tried = []
        for label, edges in single_additions(structure).items():
            candidate = _with_edges(structure, edges)
            if candidate is not None:
                tried.append((dag_fit(candidate, data), label, candidate, len(edges)))
        if not tried:
            break
        new, label, structure, k = min(tried, key=lambda t: t[0].indices["chisq"])
        gain = current.indices["chisq"] - new.indices["chisq"]
        path.append({"added": label, "chisq": new.indices["chisq"], "df": int(new.indices["df"]), "gain": gain,
                     "pvalue": float(chi2_dist.sf(gain, k)), "bic_change": new.indices["bic"] - current.indices["bic"],
                     "table3": new.table3()})
        current = new
    return path


def latent_items(structure) -> dict:
    observed = set(structure.observed)
    return {name: sorted(c for c in structure.children(name) if c in observed) for name in structure.latent}


def history_summary(history) -> dict:
    by_line = {}
    for step in history:
        key = f"phase {step['phase']} {step['line']}"
        by_line[key] = by_line.get(key, 0) + 1
    return {"n_steps": len(history), "by_line": by_line, "steps": history}


def process_dataset(name: str, save, with_sensitivity: bool = True, cache=None) -> dict:
    """Run LGES (the rule's setting, then the sensitivity grid), build the report and ``save`` the entry.

    ``save(entry)`` is called after the report and again after every further
    sensitivity run, so an interrupted run keeps what it finished.
    """
    from latentsem.datasets import load_dataset
    from latentsem.report.build import build_report, labels_from_prefix

    data = load_dataset(name)
    rule = RULE
    skipped = SENSITIVITY_SKIPPED.get(name, {})
    # The rule's run first: it is the reported model; the other settings only feed the sensitivity table.
    grid = [s for s in SENSITIVITY if s not in skipped and s != rule] if with_sensitivity else []
    print(f"[{name}] N = {data.n}, {len(data.columns)} items; rule: {setting_key(*rule)}", flush=True)
    def run(criterion, epsilon, pair_restarts=SENSITIVITY_PAIR_RESTARTS):
        started = time.perf_counter()
        est, fit = run_lges(data, criterion, epsilon, cache=cache, name=name, pair_restarts=pair_restarts)
        key = setting_key(criterion, epsilon)
        runs[key] = {"criterion": criterion, "epsilon": epsilon, "alpha": est["alpha"],
                     "runtime_s": round(est["runtime_s"], 1), "n_latent": len(est["model"].latent),
                     "n_steps": len(est["history"]), "pair_restarts": pair_restarts,
                     "excluded_pairs": est.get("excluded_pairs", []),
                     "indices": indices_of(fit) if fit is not None else independence_indices(data)}
        print(f"[{name}] {key}: {runs[key]['n_latent']} latents, {est['runtime_s']:.1f} s, "
              f"table3 {runs[key]['indices']['table3']} "
              f"({'cached search, ' if est.get('cached') else ''}"
              f"{time.perf_counter() - started - (0 if est.get('cached') else est['runtime_s']):.0f} s fit)",
              flush=True)
        return est, fit

    runs = {}
    rule_est, _ = run(*rule, pair_restarts=PAIR_RESTARTS)

    labels = labels_from_prefix(data.columns) if name in PREFIX_LABELS else None
    models = {label: (DATASETS / path).read_text(encoding="utf-8") if path else INLINE_SYNTAX[label]
              for label, path, _, _ in LITERATURE[name]}
    extra = []
    if name in PAPER_LGES:
        r, c, t = PAPER_LGES[name]
        extra.append({"name": "LGES (paper, Table 3)", "rmsea": r, "cfi": c, "tli": t,
                      "note": "reported in Dong et al. (2025) Table 3; not refitted"})
    for paper_name, (r, c, t) in PAPER_LITERATURE.get(name, []):
        extra.append({"name": f"{paper_name} (paper, Table 3)", "rmsea": r, "cfi": c, "tli": t,
                      "note": "literature row of Table 3 as published"})
    title = TITLES[name] + f" - LGES {setting_key(*rule)}, {rule_est['runtime_s']:.1f} s"
    result = build_report(data, models, discovered=rule_est["model"], out_dir=REPORTS / name, latent_covariances="dag",
                          force=True, title=title, extra_rows=extra, labels=labels,
                          labels_source=("item-name prefix (E, N, A, C, O: the IPIP trait each item was written for)"
                                         if labels else None))
    literature = {}
    for label, path, row, how in LITERATURE[name]:
        fit = result.fits[label]
        literature[label] = {"file": f"datasets/{path}" if path else "inline in this script",
                             "paper_row": row, "relation": how,
                             "indices": indices_of(fit),
                             "matches_paper_row": row is not None and tuple(fit.table3().values()) == tuple(row)}
    discovered_fit = result.fits["LGES (discovered)"]
    entry = {
        "dataset": name, "n": data.n, "n_items": len(data.columns), "rule": setting_key(*rule),
        "discovered": {"settings": setting_key(*rule), "alpha": rule_est["alpha"],
                       "chosen_criterion": rule_est.get("criterion"), "criterion_bic": rule_est.get("criterion_bic"),
                       "runtime_s": round(rule_est["runtime_s"], 1),
                       "n_latent": len(rule_est["model"].latent), "latent_items": latent_items(rule_est["model"]),
                       "indices": indices_of(discovered_fit), "history": history_summary(rule_est["history"]),
                       "worst_items": worst_items(discovered_fit)},
        "literature": literature,
        "paper_lges": PAPER_LGES.get(name),
        "sensitivity": runs,
        "sensitivity_skipped": {setting_key(*k): v for k, v in skipped.items()} if with_sensitivity else {},
    }
    if name in PAPER_LGES:
        entry["target"] = gap_to_target(discovered_fit.table3(), PAPER_LGES[name])
        entry["target_met"] = all(v["met"] for v in entry["target"].values())
        if not entry["target_met"]:
            entry["forward_path"] = forward_path(rule_est["model"], data, discovered_fit)
    if result.purity:
        p = result.purity["LGES (discovered)"]
        entry["discovered"]["purity"] = {"mean": p["mean_purity"], "weighted": p["weighted_purity"],
                                         "latents": {k: {"counts": v["counts"], "purity": v["purity"]}
                                                     for k, v in p["latents"].items()}}
    save(entry)
    for criterion, epsilon in grid:
        run(criterion, epsilon)        # adds to runs, i.e. entry["sensitivity"]
        save(entry)
    return entry


# ------------------------------------------------------------------ summary
def _f(x, nd=3):
    return "-" if x is None else f"{x:.{nd}f}"


def _counts(counts):
    return ", ".join(f"{c} {m}" for c, m in counts.items())


def _row3(t):
    return " / ".join(_f(v) for v in (t["rmsea"], t["cfi"], t["tli"]))


def summary_markdown(entries: dict) -> str:
    order = [n for n in ("bigfive", "bigfive50", "burnout", "multitasking") if n in entries]
    lines = ["# Real data: discovered (LGES) vs literature models vs the LGES paper", "",
             "Generated by `nice python scripts/make_real_reports.py` (all figures in `real_data.json`; one report "
             "per data set in `reports/<name>/report.html`).", "",
             "**Convention (the paper's Table 3):** dag latent covariances (latents without an edge are independent), "
             "ML with variances bounded at >= 0, RMSEA / CFI / TLI truncated to 3 decimals. Runtimes are LGES's "
             "`runtime_` on a shared 2-core machine (other jobs may run beside it), "
             "so they are upper bounds; bigfive50 must finish in under 10 minutes.", "",
             f"**Settings rule, applied to every data set:** {RULE_TEXT}. The sensitivity table below shows what "
             "the other settings give.", "",
             "## Discovered models against the paper's LGES row (issue 5.4 targets)", "",
             "| data set | N / items | settings (rule) | latents | runtime | chi2 (df) | RMSEA / CFI / TLI | "
             "paper LGES | gap (RMSEA, CFI, TLI) | target met |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for n in order:
        e = entries[n]
        d = e["discovered"]
        ix = d["indices"]
        if e.get("target"):
            tg = e["target"]
            gap = ", ".join(f"{tg[k]['gap']:+.3f}" for k in ("rmsea", "cfi", "tli"))
            paper = " / ".join(_f(v) for v in e["paper_lges"])
            met = "**met**" if e["target_met"] else "not met (" + ", ".join(
                k.upper() for k in ("rmsea", "cfi", "tli") if not tg[k]["met"]) + ")"
        else:
            gap, paper, met = "-", "no paper row", "-"
        chosen = f" -> {d['chosen_criterion']}" if d.get("chosen_criterion") else ""
        lines.append(f"| {n} | {e['n']} / {e['n_items']} | {d['settings']}{chosen} | {d['n_latent']} | {d['runtime_s']} s | "
                     f"{ix['chisq']:.1f} ({ix['df']}) | {_row3(ix['table3'])} | {paper} | {gap} | {met} |")
    for n in [n for n in LITERATURE if n not in entries]:
        lines.append(f"| {n} | - | {setting_key(*RULE)} "
                     "| - | - | - | - | - | - | not run yet: `nice python scripts/make_real_reports.py --datasets "
                     f"{n}` |")
    lines += ["", "## Literature models (same convention)", "",
              "| data set | model | chi2 (df) | RMSEA / CFI / TLI | paper's row | reproduces | note |",
              "|---|---|---|---|---|---|---|"]
    for n in order:
        for label, lit in entries[n]["literature"].items():
            ix = lit["indices"]
            row = " / ".join(_f(v) for v in lit["paper_row"]) if lit["paper_row"] else "-"
            hey = "; Heywood: " + ", ".join(ix["heywood"]) if ix["heywood"] else ""
            same = "yes" if lit["matches_paper_row"] else ("no" if lit["paper_row"] else "-")
            lines.append(f"| {n} | {label} (`{lit['file']}`) | {ix['chisq']:.2f} ({ix['df']}) | "
                         f"{_row3(ix['table3'])} | {row} | {same} | "
                         f"{lit['relation']}{hey} |")
    lines += ["", "Notes on the rows that do not reproduce (checked in `tests/test_literature_models.py`):", "",
              "- Byrne (2010): Table 3's row is not pinned to one specification. LITERATURE_MODELS.md's example of "
              "the 8 combinations said to hit it (the respecified model without `ELC ~~ PA`, plus `CC ~~ PS`, "
              "`DM ~~ SS`, `DM ~~ PS`) gives chi2(451) = 1850.21, 0.07197 / 0.86163 / 0.84782: CFI and TLI match "
              "under truncation, RMSEA only when rounded (truncated 0.071, not 0.072).",
              "- Himi et al. (2019b): the second-order model under the bound (Question disturbance at 0) gives "
              "chi2(24) = 61.445, 0.0879 / 0.9617 / 0.9426, truncated 0.087 / 0.961 / 0.942, one thousandth below "
              "the published CFI and TLI: the closest principled match. Unbounded, our fit reaches the true optimum "
              "chi2(24) = 58.518 (= the correlated three-factor CFA) with a negative Question disturbance variance; "
              "the 64.47 once quoted is lavaan stopping early on the raw scales. The three-factor syntax read under "
              "dag semantics has uncorrelated factors and fits far worse.",
              "", "## Sensitivity of the discovered model to the settings", "",
              "Every data set rerun with the LR rule (default alpha) and with the RMSEA rule at epsilon 0.04 / 0.05 "
              "/ 0.06. The row the rule picks is marked *: it is the reported model, searched with pair_restarts "
              "(LGES's default); the grid's rows are searched without them, so the marked row and the grid's row "
              "of the same criterion show what the restarts change.", "",
              "| data set | settings | latents | runtime | chi2 (df) | RMSEA / CFI / TLI | BIC |",
              "|---|---|---|---|---|---|---|"]
    for n in order:
        e = entries[n]
        for key, run in e["sensitivity"].items():
            ix = run["indices"]
            mark = " *" if key == e["rule"] else ""
            if run.get("excluded_pairs"):
                mark += " (restarts excluded " + ", ".join("-".join(pair) for pair in run["excluded_pairs"]) + ")"
            lines.append(f"| {n} | {key}{mark} | {run['n_latent']} | {run['runtime_s']} s | "
                         f"{ix['chisq']:.1f} ({ix['df']}) | {_row3(ix['table3'])} | {_f(ix['bic'], 1)} |")
        for key, why in e.get("sensitivity_skipped", {}).items():
            lines.append(f"| {n} | {key} | - | - | - | {why} | - |")
        for key in [setting_key(*g) for g in SENSITIVITY]:
            if key not in e["sensitivity"] and key not in e.get("sensitivity_skipped", {}):
                lines.append(f"| {n} | {key} | - | - | - | not run yet (interrupted or --no-sensitivity) | - |")
    lines += ["", "## Diagnostics of the discovered models", ""]
    for n in order:
        d = entries[n]["discovered"]
        lines += [f"### {n}", "", "Latents and their items: " + "; ".join(
            f"{k}: {', '.join(v) if v else '(no items)'}" for k, v in d["latent_items"].items()) + ".", ""]
        if d.get("purity"):
            p = d["purity"]
            lines.append(f"Purity (item-prefix traits): mean {_f(p['mean'], 2)}, weighted {_f(p['weighted'], 2)}; "
                         + "; ".join(f"{k} {_f(v['purity'], 2)} ({_counts(v['counts'])})"
                                     for k, v in p["latents"].items()) + ".")
            lines.append("")
        h = d["history"]
        lines.append(f"Search history: {h['n_steps']} accepted steps (" + ", ".join(
            f"{k}: {v}" for k, v in h["by_line"].items()) + ").")
        lines.append("")
        if DIAGNOSIS.get(n):
            lines += ["Diagnosis: " + DIAGNOSIS[n], ""]
        if entries[n].get("forward_path"):
            lines += ["The paper's row is not met. The parameters a respecification would add next (greedy, each "
                      "single addition refitted exactly; p-value of its chi-square gain; BIC change, negative = BIC "
                      "prefers the addition):", "",
                      "| step | added | chi2 (df) | gain | p | BIC change | RMSEA / CFI / TLI |", "|---|---|---|---|---|---|---|"]
            lines += [f"| {k + 1} | {s['added']} | {s['chisq']:.2f} ({s['df']}) | {s['gain']:.2f} | {s['pvalue']:.4f} | "
                      f"{s['bic_change']:+.2f} | {_row3(s['table3'])} |" for k, s in enumerate(entries[n]["forward_path"])]
            lines.append("")
        lines.append("Items the model reproduces worst (mean |residual correlation| over the other items; the "
                     "largest single residual): " + "; ".join(
                         f"{w['item']} {w['mean_abs_residual_r']:.3f} (with {w['worst_partner']}: "
                         f"{w['residual_r']:+.3f})" for w in d["worst_items"]) + ".")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="bigfive,bigfive50,burnout,multitasking",
                        help="comma-separated data sets to (re)run; others keep their entry in real_data.json")
    parser.add_argument("--cache", default=None,
                        help="folder keeping each LGES result; a rerun reuses them instead of searching again")
    parser.add_argument("--no-sensitivity", action="store_true",
                        help="run only the rule's setting (the summary keeps no sensitivity rows for these)")
    parser.add_argument("--summary-only", action="store_true",
                        help="rewrite real_data.md from real_data.json without running anything")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = sorted(set(names) - set(LITERATURE))
    if unknown:
        parser.error(f"unknown data sets {unknown}; choose among {sorted(LITERATURE)}")
    json_path = REPORTS / "real_data.json"
    if args.summary_only:
        entries = json.loads(json_path.read_text())
        (REPORTS / "real_data.md").write_text(summary_markdown(entries), encoding="utf-8")
        return

    def save(entry):
        # Re-read before merging: separate invocations for different data sets may run side by side.
        entries = json.loads(json_path.read_text()) if json_path.exists() else {}
        entries[entry["dataset"]] = entry
        json_path.write_text(json.dumps(entries, indent=2, default=float) + "\n")
        (REPORTS / "real_data.md").write_text(summary_markdown(entries), encoding="utf-8")

    for name in names:
        process_dataset(name, save, with_sensitivity=not args.no_sensitivity, cache=args.cache)
    print(f"wrote {REPORTS / 'real_data.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
