"""``latentsem discover``: learn latent constructs and their causal graph from items with LGES."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..exceptions import LatentsemError
from ._common import items_options, load_items_from_cli, refuse_overwrite

def check_inputs(example, items, dataset, columns, missing_code, output, lavaan_path, force):
    """Refuse conflicting options and existing files before the (long) search starts."""
    if example and (items is not None or dataset is not None or columns is not None or missing_code is not None):
        raise LatentsemError("--example runs on the bundled example data; drop ITEMS, --dataset, --columns and "
                             "--missing-code, or drop --example.")
    if output is None and not example:
        raise LatentsemError("Give -o/--output FILE for the model JSON (or run --example to try the bundled data).")
    targets = [p for p in (output, lavaan_path) if p is not None]
    if len(targets) == 2 and Path(output).resolve() == Path(lavaan_path).resolve():
        raise LatentsemError(f"-o and --lavaan both name {output}; give two different files.")
    for target in targets:
        if items is not None and Path(items).resolve() == Path(target).resolve():
            raise LatentsemError(f"{target} is the ITEMS file; choose another output path.")
        refuse_overwrite(target, force)


def resolve_criterion(criterion, delta, alpha):
    """The criterion LGES uses; an explicit --delta means the paper's delta rule, which has no --alpha."""
    if delta is not None and criterion not in (None, "delta"):
        raise LatentsemError(f"--delta sets the paper's delta rule but --criterion is {criterion}; drop one of them.")
    resolved = "delta" if delta is not None else (criterion or "auto")
    if alpha is not None and resolved in ("delta", "rmsea"):
        raise LatentsemError(f"--alpha is the level of the lr test, which --criterion {resolved} does not use; "
                             "drop --alpha or use --criterion lr (or auto).")
    return resolved


def show_progress(quiet, stream=None):
    """Draw LGES's progress bar only for a person watching: stderr is a terminal and no --quiet."""
    stream = sys.stderr if stream is None else stream
    return not quiet and stream.isatty()


def load_data(example, items, dataset, columns, missing_code):
    """ItemData of the bundled example or of ITEMS / --dataset (the data layer refuses fewer than 4 items)."""
    if example:
        from ..data import read_items
        from ..simulate.gnfm import bundled_example

        return read_items(bundled_example()[0])
    return load_items_from_cli(items, dataset, columns, missing_code)


def run_lges(data, parameters):
    """Fit LGES, collecting its warnings (printed once by the command) instead of letting them go to stderr."""
    import warnings

    from ..lges import LGES

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator = LGES(**parameters).fit(data)
    messages = list(dict.fromkeys(str(w.message) for w in caught))
    return estimator, messages


def discovered_model(estimator, data, parameters, messages):
    """``model_`` with everything needed to reproduce and judge the search in its metadata."""
    from .. import __version__

    settings = {k: v for k, v in parameters.items() if k != "progress"}
    metadata = {
        **estimator.model_.metadata,
        "method": "LGES",
        "criterion": estimator.criterion_,
        "alpha": estimator.alpha_,
        "n_candidates": estimator.n_candidates_,
        "excluded_pairs": [list(pair) for pair in estimator.excluded_pairs_],
        "source": data.source,
        "n_dropped": data.n_dropped,
        "parameters": settings,
        "latentsem_version": __version__,
        "warnings": messages,
        "history": [step.to_dict() for step in estimator.history_],
    }
    return estimator.model_.replace(metadata=metadata)


def summary_text(model, estimator, data):
    """Readable summary: latents with their items, latent-latent edges, likelihood, runtime, candidates."""
    lines = [f"LGES on {data.source}: N = {data.n}, {len(data.columns)} items ({rule_text(estimator)})"]
    if data.n_dropped:
        lines.append(f"({data.n_dropped} incomplete rows dropped)")
    lines += ["  " + line for line in model.summary().splitlines()]
    shared = [" & ".join(group) for group in model.groups if len(group) > 1]
    if shared:
        lines.append("  groups of latents with the same items: " + "; ".join(shared))
    orphans = [name for name in model.observed if not model.parents(name)]
    if not model.latent:
        lines.append("  no latent found: the items look mutually independent (no common factor)")
    elif orphans:
        lines.append("  items without a latent parent (they correlate with no other item): " + ", ".join(orphans))
    lines.append(f"log-likelihood {estimator.log_likelihood_:.3f}; {estimator.n_candidates_} candidate structures "
                 f"scored in {estimator.runtime_:.1f} s")
    return "\n".join(lines)


def rule_text(estimator):
    """How the search judged deletions, e.g. 'lr test at alpha = 0.001; chosen by BIC over rmsea'."""
    criterion = estimator.criterion_
    if criterion == "lr":
        rule = f"lr test at alpha = {estimator.alpha_:.3g}"
    elif criterion == "rmsea":
        rule = f"close fit, RMSEA of each deletion <= {estimator.epsilon:.3g}"
    else:
        rule = f"delta = {estimator.delta_:.3g}"
    chosen = min(estimator.criterion_bic_, key=estimator.criterion_bic_.get)   # the kept search (first of equals)
    others = [label for label in estimator.criterion_bic_ if label != chosen]
    if others:
        rule += f"; chosen by BIC over {', '.join(others)}"
    if estimator.excluded_pairs_:
        pairs = ", ".join(f"{a} & {b}" for a, b in estimator.excluded_pairs_)
        rule += f"; rerun without the pair cluster(s) {pairs} (lower BIC)"
    regroup = [step for step in estimator.history_ if step.line == "regroup"]
    if regroup:  # the moves, then Phase 2 rerun: "... BIC a -> b"
        moves = len(regroup) - 1
        rule += (f"; regrouped ({moves} move{'s' if moves != 1 else ''}, then Phase 2 again): "
                 f"{regroup[-1].description.split(': ')[-1]}")
    return rule


def comparison_text(model):
    """F1, precision, recall and SHD against the bundled example's true structure."""
    from ..metrics.latent import compare_structures
    from ..model import Structure
    from ..simulate.gnfm import bundled_example

    truth_path = bundled_example()[1]
    comparison = compare_structures(Structure.from_json(truth_path), model)
    return f"Comparison with the true structure ({truth_path.name}):\n" + comparison.summary()


@click.command(name="discover")
@items_options
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Model JSON file to write (the structure plus the search's settings and history). "
                   "Required unless --example.")
@click.option("--delta-scale", type=float, default=0.25, show_default=True,
              help="k in the paper's tolerance delta = k log(N) / N (with --criterion delta).")
@click.option("--delta", type=float, default=None,
              help="An explicit tolerance on the per-sample log-likelihood scale; selects --criterion delta.")
@click.option("--criterion", type=click.Choice(["auto", "lr", "rmsea", "delta"]), default=None,
              help="auto (default): search with lr (at the default level, 0.01 and 0.05, or at --alpha) and with "
                   "rmsea, keep the model with the lowest BIC; "
                   "lr: keep a deletion unless a likelihood-ratio test at level --alpha rejects it; "
                   "rmsea: keep it when the RMSEA of the constraint it adds is at most --epsilon (close fit); "
                   "delta: the paper's rule, keep it when the per-sample log-likelihood falls by at most delta.")
@click.option("--alpha", type=float, default=None, help="Level of the lr test (default: min(0.05, 1/N)).")
@click.option("--epsilon", type=float, default=0.05, show_default=True,
              help="RMSEA bound of the rmsea criterion (0.05: close fit).")
@click.option("--n-jobs", type=int, default=1, show_default=True,
              help="Worker processes for the candidate fits (-1: all cores); the result does not depend on it.")
@click.option("--pair-restarts/--no-pair-restarts", default=True, show_default=True,
              help="Rerun the search without each two-item cluster of its first step and keep the lowest BIC "
                   "(a pair of a two-latent group's items can pass as its own latent).")
@click.option("--regroup/--no-regroup", default=True, show_default=True,
              help="After the search, move items between latent groups, split, merge or resize groups while "
                   "that lowers the BIC, then rerun Phase 2; keep the result if its BIC is lower.")
@click.option("--seed", type=int, default=0, show_default=True, help="random_state of LGES (restarts of its fits).")
@click.option("--lavaan", "lavaan_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the model as lavaan syntax (latents without an edge are independent).")
@click.option("--example", is_flag=True,
              help="Run on the bundled example (15 items, N = 1000) and compare with its known true structure.")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress bar, warnings or summary; only the files (with --example, the comparison only).")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
def command(items, dataset, columns, missing_code, output, delta_scale, delta, criterion, alpha, epsilon, n_jobs,
            pair_restarts, regroup, seed,
            lavaan_path, example, quiet, force):
    """Learn which latent constructs ITEMS measure and how they cause one another (LGES).

    Writes the model as JSON (-o), optionally as lavaan syntax (--lavaan), and
    prints each latent with its items and the latent-latent edges (a CPDAG:
    'A - B' means the data cannot tell the direction). A progress bar is drawn
    on stderr when it is a terminal.

    Example: latentsem discover --example
    """
    check_inputs(example, items, dataset, columns, missing_code, output, lavaan_path, force)
    parameters = {"delta_scale": delta_scale, "delta": delta, "criterion": resolve_criterion(criterion, delta, alpha),
                  "alpha": alpha, "epsilon": epsilon, "pair_restarts": pair_restarts, "regroup": regroup, "n_jobs": n_jobs,
                  "random_state": seed,
                  "progress": show_progress(quiet)}
    data = load_data(example, items, dataset, columns, missing_code)
    estimator, messages = run_lges(data, parameters)
    model = discovered_model(estimator, data, parameters, messages)

    written = []
    if output is not None:
        model.to_json(output)
        written.append(f"Wrote {output}")
    if lavaan_path is not None:
        from ..syntax import to_lavaan

        lavaan_path.write_text(to_lavaan(model, "dag"))
        written.append(f"Wrote {lavaan_path} (lavaan syntax)")
    if not quiet:
        for message in messages:
            click.echo(f"Warning: {message}", err=True)
        click.echo(summary_text(model, estimator, data))
        for line in written:
            click.echo(line)
    if example:
        click.echo(comparison_text(model))
