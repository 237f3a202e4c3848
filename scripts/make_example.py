"""Generate the bundled example data set: latentsem/data/example.csv and example_truth.json.

A seeded generalized N factor model (Definition 2 of the LGES paper) with
N = 1000 rows, 14-16 observed items, 3-4 latents, at least one impure item
(caused by two latent groups) and at least one latent -> latent edge. Seeds
0, 1, 2, ... are tried in order and the first graph with those properties is
kept, so the output is the same on every run. Values are rounded to 4
decimals to keep the CSV small.

Usage: python scripts/make_example.py [--force]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from latentsem.simulate.gnfm import check_gnfm, make_gnfm_dataset

N = 1000
GRAPH = dict(n_groups=(3, 3), two_latent_share=0.5, extra_pure=(1, 3), n_impure=(1, 1))
DATA_DIR = Path(__file__).resolve().parents[1] / "latentsem" / "data"


def wanted(truth):
    """14-16 items, 3-4 latents, an impure item and a latent edge."""
    latent = set(truth.latent)
    groups = {frozenset(g) for g in truth.groups}
    impure = [x for x in truth.observed if frozenset(truth.parents(x)) not in groups]
    latent_edges = [e for e in truth.edges if e.source in latent and e.target in latent]
    return 14 <= len(truth.observed) <= 16 and 3 <= len(latent) <= 4 and impure and latent_edges


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    args = parser.parse_args()
    csv_path, truth_path = DATA_DIR / "example.csv", DATA_DIR / "example_truth.json"
    for path in (csv_path, truth_path):
        if path.exists() and not args.force:
            raise SystemExit(f"{path} already exists; pass --force to overwrite it.")
    for seed in range(1000):
        data, truth = make_gnfm_dataset(seed, N, **GRAPH)
        if wanted(truth):
            break
    else:
        raise SystemExit("No seed below 1000 gives the wanted graph; widen GRAPH.")
    check_gnfm(truth)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    data.to_csv(csv_path, index=False, float_format="%.4f")
    metadata = dict(truth.metadata)
    metadata["example"] = {"script": "scripts/make_example.py", "seed": seed, "rounded_decimals": 4}
    truth.replace(metadata=metadata).to_json(truth_path)
    print(f"seed {seed}: {len(truth.observed)} items, {len(truth.latent)} latents; "
          f"wrote {csv_path} ({csv_path.stat().st_size // 1024} KB) and {truth_path}")
    print(truth.summary())


if __name__ == "__main__":
    main()
