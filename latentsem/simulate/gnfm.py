"""Random generalized N factor models (GNFM, Definition 2) and data drawn from them.

The generator follows the paper's synthetic setting (section 5.1, Figure 8)
and the authors' public code (REFERENCE.md section 2):

* latents come in groups of one or two mutually non-adjacent variables
  (Definition 2 (iii)); a random DAG joins the groups, and a group edge
  A -> B means every member of A causes every member of B (Definition 2 (ii));
* each group has at least ``2 |group|`` pure observed children, whose parents
  are exactly the group (Definition 2 (i)); a few impure observed variables are
  caused by every member of two groups;
* edge weights are U(-5, 5) redrawn until ``|w| >= 1``; noise variances are
  U(0.1, 1); the noise is Gaussian, uniform or Laplace with that variance;
* the misspecified variant (section 5.3) passes every variable through a leaky
  ReLU, ``V_i = LR(sum_j f_ji V_j + eps_i)`` with ``LR(x) = max(alpha x, x)``
  and ``alpha = 0.8``: positive values are kept, negative ones multiplied by 0.8.

The defaults give about 20 variables of which about 5 are latent (3-4 groups,
half of them with two latents, 2|group| + 0-1 pure children each, 1-3 impure
children), as in section 5.1.

Weights and noise variances are kept in the structure's metadata (keys
``"weights"``: ``[[source, target, w], ...]`` and ``"noise_variances"``:
``{name: variance}``), so a truth JSON file is enough to redraw data or to
compute the population covariance.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from ..exceptions import LatentsemError, StructureError
from ..graph import is_connected, topological_order
from ..model import Edge, Structure

WEIGHT_BOUND = 5.0        # weights are U(-5, 5) ...
MIN_ABS_WEIGHT = 1.0      # ... redrawn until |w| >= 1 (authors' generator)
NOISE_VAR_RANGE = (0.1, 1.0)
LEAKY_SLOPE = 0.8         # alpha of LR(x) = max(alpha x, x), section 5.3
NOISE_KINDS = ("gaussian", "uniform", "laplace")
NONLINEARITIES = (None, "leaky_relu")


# ----------------------------------------------------------------- graphs
def random_gnfm(random_state=None, *, n_groups=(3, 4), two_latent_share=0.5, extra_pure=(0, 1),
                n_impure=(1, 3), edge_prob=0.5, connected=True):
    """A random DAG that satisfies Definition 2, with weights and noise variances.

    Parameters
    ----------
    random_state : int, numpy Generator or None
        Seed; the same seed gives the same graph, weights and variances.
    n_groups : (int, int)
        Inclusive range of the number of latent groups, drawn uniformly.
    two_latent_share : float in [0, 1]
        Probability that a group has two latents instead of one.
    extra_pure : (int, int)
        Inclusive range of pure children added to the ``2 |group|`` required.
    n_impure : (int, int)
        Inclusive range of impure observed variables, each caused by every
        member of two distinct groups.
    edge_prob : float in [0, 1]
        Probability of each group edge A -> B (A before B in a random order).
    connected : bool
        Redraw the group DAG until its skeleton is connected.

    Returns
    -------
    Structure
        Latents ``L1..`` (numbered in causal order of their groups), observed
        ``X1..`` (pure children group by group, then the impure ones), the
        groups, and metadata ``weights``, ``noise_variances`` and ``generator``.
    """
    n_groups = _int_range("n_groups", n_groups, low=1)
    extra_pure = _int_range("extra_pure", extra_pure, low=0)
    n_impure = _int_range("n_impure", n_impure, low=0)
    _probability("two_latent_share", two_latent_share)
    _probability("edge_prob", edge_prob)
    if n_impure[1] > 0 and n_groups[0] < 2:
        raise LatentsemError("The 'n_impure' parameter of random_gnfm needs at least 2 groups; set n_groups=(2, ...) or n_impure=(0, 0).")
    if connected and edge_prob == 0 and n_groups[1] > 1:
        raise LatentsemError("The 'edge_prob' parameter of random_gnfm must be > 0 when connected=True. Got 0 instead.")
    rng = np.random.default_rng(random_state)

    g = int(rng.integers(n_groups[0], n_groups[1] + 1))
    sizes = [2 if rng.random() < two_latent_share else 1 for _ in range(g)]
    groups, count = [], 0
    for size in sizes:
        groups.append([f"L{count + k + 1}" for k in range(size)])
        count += size
    group_dag = _random_group_dag(g, edge_prob, connected, rng)

    edges = [Edge(a, b) for i, j in zip(*np.nonzero(group_dag)) for a in groups[i] for b in groups[j]]
    observed = []
    for members in groups:  # Definition 2 (i): at least 2|group| pure children
        for _ in range(2 * len(members) + int(rng.integers(extra_pure[0], extra_pure[1] + 1))):
            observed.append(f"X{len(observed) + 1}")
            edges += [Edge(lat, observed[-1]) for lat in members]
    if g >= 2:
        for _ in range(int(rng.integers(n_impure[0], n_impure[1] + 1))):
            pair = sorted(rng.choice(g, size=2, replace=False).tolist())
            observed.append(f"X{len(observed) + 1}")
            edges += [Edge(lat, observed[-1]) for k in pair for lat in groups[k]]

    latent = [name for members in groups for name in members]
    weights = [[e.source, e.target, _draw_weight(rng)] for e in edges]
    noise_variances = {name: float(rng.uniform(*NOISE_VAR_RANGE)) for name in latent + observed}
    generator = {"name": "gnfm", "n_groups": list(n_groups), "two_latent_share": two_latent_share,
                 "extra_pure": list(extra_pure), "n_impure": list(n_impure), "edge_prob": edge_prob,
                 "connected": connected}
    if isinstance(random_state, (int, np.integer)):
        generator["seed"] = int(random_state)
    metadata = {"generator": generator, "weights": weights, "noise_variances": noise_variances}
    return Structure(observed, latent, edges, groups, metadata)


def _random_group_dag(g, edge_prob, connected, rng):
    """Upper-triangular (so acyclic) random DAG among ``g`` groups, optionally connected."""
    while True:
        dag = np.triu(rng.random((g, g)) < edge_prob, k=1)
        if not connected or is_connected(dag | dag.T):
            return dag


def _draw_weight(rng):
    """U(-5, 5) redrawn until |w| >= 1 (the authors' generator)."""
    while True:
        w = float(rng.uniform(-WEIGHT_BOUND, WEIGHT_BOUND))
        if abs(w) >= MIN_ABS_WEIGHT:
            return w


def _int_range(name, value, low):
    try:
        lo, hi = (int(v) for v in value)
        ok = low <= lo <= hi and all(float(v) == int(v) for v in value)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise LatentsemError(f"The {name!r} parameter of random_gnfm must be a pair of ints {low} <= lo <= hi. Got {value!r} instead.")
    return lo, hi


def _probability(name, value):
    if not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise LatentsemError(f"The {name!r} parameter of random_gnfm must be a float in [0, 1]. Got {value!r} instead.")


# ------------------------------------------------------------- validation
def gnfm_violations(structure):
    """The ways ``structure`` (with its declared groups) breaks Definition 2, as messages.

    Checks that the structure is a DAG without residual covariances, that
    every observed variable has a latent parent, and for each group L_p:
    (i) at least ``2 |L_p|`` observed variables have parents exactly L_p,
    (ii) any variable that causes (is caused by) one member causes (is caused
    by) every member, (iii) members are mutually non-adjacent. The partition
    checked is ``structure.groups``; Definition 2 asks that *some* partition
    works, and the generator declares the one it used.
    """
    problems = []
    if not structure.is_dag:
        problems.append("it has undirected edges (Definition 2 is about DAGs)")
    if structure.covariances():
        problems.append("it has residual covariance edges")
    parents = {name: set(structure.parents(name)) for name in structure.observed + structure.latent}
    children = {name: set(structure.children(name)) for name in structure.latent}
    orphans = [x for x in structure.observed if not parents[x]]
    if orphans:
        problems.append(f"observed {orphans} have no latent parent")
    for group in structure.groups:
        members = set(group)
        pure = [x for x in structure.observed if parents[x] == members]
        if len(pure) < 2 * len(group):
            problems.append(f"group {list(group)} has {len(pure)} pure children, needs {2 * len(group)} (Definition 2 (i))")
        causes = set().union(*(parents[a] for a in group)) - members
        effects = set().union(*(children[a] for a in group)) - members
        partial_causes = sorted(v for v in causes if not all(v in parents[a] for a in group))
        partial_effects = sorted(v for v in effects if not all(v in children[a] for a in group))
        if partial_causes or partial_effects:
            problems.append(f"{partial_causes + partial_effects} relate to only some members of group {list(group)} (Definition 2 (ii))")
        adjacent = sorted((a, b) for a in group for b in group if a < b and (b in children[a] or a in children[b]))
        if adjacent:
            problems.append(f"group {list(group)} has adjacent members {adjacent} (Definition 2 (iii))")
    return problems


def check_gnfm(structure):
    """Raise :class:`StructureError` unless ``structure`` satisfies Definition 2; return it otherwise."""
    problems = gnfm_violations(structure)
    if problems:
        raise StructureError(f"The structure is not a generalized N factor model: {'; '.join(problems)}; fix the edges or the groups.")
    return structure


# ------------------------------------------------------------- parameters
def edge_weights(structure):
    """The ``{(source, target): weight}`` stored in ``structure.metadata['weights']``."""
    stored = structure.metadata.get("weights")
    if stored is None:
        raise StructureError("The structure has no 'weights' metadata; pass weights={(source, target): w} explicitly.")
    return {(s, t): float(w) for s, t, w in stored}


def noise_variances(structure):
    """The ``{name: variance}`` stored in ``structure.metadata['noise_variances']``."""
    stored = structure.metadata.get("noise_variances")
    if stored is None:
        raise StructureError("The structure has no 'noise_variances' metadata; pass noise_var={name: variance} explicitly.")
    return {name: float(v) for name, v in stored.items()}


def _parameter_arrays(structure, weights, noise_var):
    """Weight matrix W (``[i, j]`` = weight of i -> j) and noise variances, order latent + observed."""
    if not structure.is_dag:
        raise StructureError("Simulation needs a DAG; orient the undirected latent edges first (Structure.to_dag()).")
    weights = edge_weights(structure) if weights is None else dict(weights)
    noise_var = noise_variances(structure) if noise_var is None else dict(noise_var)
    names = list(structure.latent) + list(structure.observed)
    index = {name: i for i, name in enumerate(names)}
    W = np.zeros((len(names), len(names)))
    for e in structure.edges:
        if e.type != "directed":
            continue
        if (e.source, e.target) not in weights:
            raise StructureError(f"Edge {e.source} -> {e.target} has no weight; add it to weights.")
        W[index[e.source], index[e.target]] = weights[(e.source, e.target)]
    missing = [name for name in names if name not in noise_var]
    if missing:
        raise StructureError(f"Variables {missing} have no noise variance; add them to noise_var.")
    omega = np.array([noise_var[name] for name in names], dtype=float)
    if np.any(omega < 0):
        raise StructureError("Noise variances must be non-negative; fix noise_var.")
    return names, W, omega


def population_covariance(structure, weights=None, noise_var=None):
    """Covariance of the observed variables implied by a linear model (Definition 1).

    ``Sigma_X = Lambda (I - B')^-1 Omega_L (I - B')^-T Lambda' + Psi`` where
    ``B[i, j]`` is the weight of latent i -> latent j (so ``L = B' L + eps_L``),
    ``Lambda[k, j]`` the weight of latent j -> observed k, ``Omega_L`` and
    ``Psi`` the diagonal noise variances of latents and observed variables.
    This is the brief's ``Lambda (I-B)^-1 Omega_L (I-B)^-T Lambda' + Psi`` with B
    written target-by-source. Order: ``structure.observed``. Weights and
    variances default to the structure's metadata.
    """
    names, W, omega = _parameter_arrays(structure, weights, noise_var)
    m = len(structure.latent)
    B, Lam = W[:m, :m], W[:m, m:].T
    inv = np.linalg.inv(np.eye(m) - B.T)
    cov_latent = inv @ np.diag(omega[:m]) @ inv.T
    return Lam @ cov_latent @ Lam.T + np.diag(omega[m:])


# ------------------------------------------------------------------- data
def simulate_data(structure, weights=None, n=1000, *, noise_var=None, noise="gaussian", nonlinearity=None,
                  random_state=None, include_latent=False, leaky_slope=LEAKY_SLOPE):
    """Draw ``n`` samples from the linear (or leaky-ReLU) model on ``structure``.

    Each variable, in causal order, is ``V_i = sum_j f_ji V_j + eps_i``
    (Definition 1); with ``nonlinearity="leaky_relu"`` it is
    ``V_i = LR(sum_j f_ji V_j + eps_i)``, ``LR(x) = max(alpha x, x)`` (section
    5.3), applied to every variable, latent and observed. The noise matrix is
    drawn before any variable is computed, so the linear and leaky-ReLU data of
    one seed share their noise.

    Parameters
    ----------
    structure : Structure
        A DAG (no undirected edges).
    weights : mapping (source, target) -> float, optional
        Defaults to ``structure.metadata['weights']``.
    n : int
        Number of samples.
    noise_var : mapping name -> float, optional
        Defaults to ``structure.metadata['noise_variances']``.
    noise : {"gaussian", "uniform", "laplace"}
        Noise distribution, always with mean 0 and the given variance.
    nonlinearity : {None, "leaky_relu"}
    random_state : int, numpy Generator or None
    include_latent : bool
        Also return the latent columns (after the observed ones).
    leaky_slope : float
        alpha of the leaky ReLU (0.8 in the paper).

    Returns
    -------
    pandas.DataFrame
        Columns ``structure.observed`` (then ``structure.latent``), ``n`` rows.
    """
    import pandas as pd

    if noise not in NOISE_KINDS:
        raise LatentsemError(f"The 'noise' parameter of simulate_data must be one of {list(NOISE_KINDS)}. Got {noise!r} instead.")
    if nonlinearity not in NONLINEARITIES:
        raise LatentsemError(f"The 'nonlinearity' parameter of simulate_data must be one of {list(NONLINEARITIES)}. Got {nonlinearity!r} instead.")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise LatentsemError(f"The 'n' parameter of simulate_data must be an int in [1, inf). Got {n!r} instead.")
    names, W, omega = _parameter_arrays(structure, weights, noise_var)
    rng = np.random.default_rng(random_state)
    eps = _draw_noise(rng, noise, int(n), len(names)) * np.sqrt(omega)
    values = np.zeros_like(eps)
    for j in topological_order(W != 0):
        values[:, j] = values @ W[:, j] + eps[:, j]
        if nonlinearity == "leaky_relu":
            values[:, j] = np.where(values[:, j] > 0, values[:, j], leaky_slope * values[:, j])
    m = len(structure.latent)
    frame = pd.DataFrame(values[:, m:], columns=list(structure.observed))
    if include_latent:
        for k, name in enumerate(structure.latent):
            frame[name] = values[:, k]
    return frame


def _draw_noise(rng, kind, n, v):
    """Unit-variance, zero-mean noise of the given kind, shape (n, v)."""
    if kind == "gaussian":
        return rng.standard_normal((n, v))
    if kind == "uniform":  # U(-a, a) has variance a^2 / 3
        return rng.uniform(-np.sqrt(3.0), np.sqrt(3.0), size=(n, v))
    return rng.laplace(0.0, np.sqrt(0.5), size=(n, v))  # Laplace(b) has variance 2 b^2


def make_gnfm_dataset(random_state=None, n=1000, *, noise="gaussian", nonlinearity=None, **graph_params):
    """A random GNFM (:func:`random_gnfm`) and ``n`` samples of its observed variables.

    One generator seeded by ``random_state`` draws the graph, then the data,
    so the pair is deterministic per seed. ``graph_params`` go to
    :func:`random_gnfm`. Returns ``(DataFrame, truth Structure)``; the truth's
    metadata also records ``simulation`` = ``{n, noise, nonlinearity}``.
    """
    rng = np.random.default_rng(random_state)
    truth = random_gnfm(rng, **graph_params)
    data = simulate_data(truth, n=n, noise=noise, nonlinearity=nonlinearity, random_state=rng)
    metadata = dict(truth.metadata)
    if isinstance(random_state, (int, np.integer)):
        metadata["generator"] = {**metadata["generator"], "seed": int(random_state)}
    metadata["simulation"] = {"n": int(n), "noise": noise, "nonlinearity": nonlinearity}
    return data, truth.replace(metadata=metadata)


def bundled_example():
    """Paths of the bundled example data set and its true structure: ``(csv, truth_json)``.

    Made by ``scripts/make_example.py`` (a seeded GNFM, N = 1000). The paths
    point into the installed package (a regular, unzipped install).
    """
    root = resources.files("latentsem") / "data"
    return Path(str(root / "example.csv")), Path(str(root / "example_truth.json"))
