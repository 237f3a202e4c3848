"""Random DAGs and linear SEM data, as in the NOTEARS authors' simulator.

Zheng et al. (2018), section 5, and their public ``utils.py``:

* ``simulate_dag``: Erdos-Renyi graphs with exactly ``s0`` edges (igraph's
  ``Erdos_Renyi(n=d, m=s0)``) oriented along a random order, or scale-free
  Barabasi-Albert graphs where every new node sends ``round(s0 / d)`` edges to
  earlier nodes chosen with probability proportional to their in-degree + 1
  (igraph's ``Barabasi(n=d, m=s0/d, directed=True)``: hubs are sinks with
  many parents). Nodes are then randomly permuted. "ER2" means ``s0 = 2 d``,
  "SF4" means ``s0 = 4 d``.
* ``simulate_parameter``: weights drawn from U(-2, -0.5) or U(0.5, 2), each
  range with equal probability.
* ``simulate_linear_sem``: ``X_j = X_pa(j) W[pa(j), j] + z_j`` in topological
  order, with Gaussian, exponential, Gumbel or uniform noise.

Convention everywhere: ``B[i, j] != 0`` (or ``W[i, j]``) means an edge i -> j,
so the model is ``X = X W + Z``. Every function takes ``random_state`` (an int,
a :class:`numpy.random.Generator` or None) and never touches the global RNG.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import LatentsemError, StructureError
from ..graph import topological_order

GRAPH_TYPES = ("ER", "SF")
NOISE_TYPES = ("gaussian", "exponential", "gumbel", "uniform")
WEIGHT_RANGES = ((-2.0, -0.5), (0.5, 2.0))


def _rng(random_state):
    """A Generator from an int, a Generator or None (fresh entropy)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


def _permute(B, rng):
    """Relabel the nodes of ``B`` by a random permutation (keeps acyclicity)."""
    order = rng.permutation(B.shape[0])
    return B[np.ix_(order, order)]


def _erdos_renyi(d, s0, rng):
    """Exactly ``s0`` edges drawn uniformly among the d(d-1)/2 pairs, pointing forward in index order."""
    rows, cols = np.tril_indices(d, k=-1)       # pairs (i, j) with j < i
    chosen = rng.choice(rows.size, size=s0, replace=False)
    B = np.zeros((d, d), dtype=int)
    B[cols[chosen], rows[chosen]] = 1           # j -> i with j < i: acyclic before the permutation
    return B


def _barabasi_albert(d, m, rng):
    """Preferential attachment: node k sends min(m, k) edges to distinct earlier nodes, P ~ in-degree + 1."""
    B = np.zeros((d, d), dtype=int)
    in_degree = np.zeros(d)
    for k in range(1, d):
        appeal = in_degree[:k] + 1.0
        targets = rng.choice(k, size=min(m, k), replace=False, p=appeal / appeal.sum())
        B[k, targets] = 1                       # new -> old: acyclic before the permutation
        in_degree[targets] += 1
    return B


def simulate_dag(d, s0, graph_type="ER", random_state=None):
    """A random DAG with ``d`` nodes and about ``s0`` edges.

    Parameters
    ----------
    d : int
        Number of nodes (>= 2).
    s0 : int
        Expected number of edges: exactly ``s0`` for "ER" (at most d(d-1)/2),
        about ``s0`` for "SF" (each node after the first ``round(s0/d)`` adds
        ``round(s0/d)`` edges, the first ones fewer).
    graph_type : {"ER", "SF"}
        Erdos-Renyi or scale-free (Barabasi-Albert).
    random_state : int, numpy.random.Generator or None

    Returns
    -------
    numpy.ndarray of int, shape (d, d)
        Binary adjacency, ``B[i, j] == 1`` for an edge i -> j.
    """
    if graph_type not in GRAPH_TYPES:
        raise LatentsemError(f"graph_type must be one of {list(GRAPH_TYPES)}; got {graph_type!r}.")
    if int(d) != d or d < 2:
        raise LatentsemError(f"d must be an int >= 2; got {d!r}.")
    max_edges = d * (d - 1) // 2
    if int(s0) != s0 or not 0 <= s0 <= max_edges:
        raise LatentsemError(f"s0 must be an int in [0, {max_edges}] for a DAG on {d} nodes; got {s0!r}.")
    rng = _rng(random_state)
    if graph_type == "ER":
        B = _erdos_renyi(int(d), int(s0), rng)
    else:
        B = _barabasi_albert(int(d), int(round(s0 / d)), rng)
    return _permute(B, rng)


def simulate_parameter(B, w_ranges=WEIGHT_RANGES, random_state=None):
    """Edge weights for the binary DAG ``B``: each edge picks one range of ``w_ranges`` at random, then U(low, high).

    Returns
    -------
    numpy.ndarray of float, shape (d, d)
        ``W[i, j] != 0`` exactly where ``B[i, j] != 0``.
    """
    rng = _rng(random_state)
    B = np.asarray(B) != 0
    which = rng.integers(len(w_ranges), size=B.shape)
    W = np.zeros(B.shape)
    for k, (low, high) in enumerate(w_ranges):
        W += B * (which == k) * rng.uniform(low, high, size=B.shape)
    return W


def _noise(kind, scale, n, rng):
    """``n`` draws of the authors' noise ``kind`` with scale ``scale``."""
    if kind == "gaussian":
        return rng.normal(scale=scale, size=n)
    if kind == "exponential":
        return rng.exponential(scale=scale, size=n)
    if kind == "gumbel":
        return rng.gumbel(scale=scale, size=n)
    return rng.uniform(low=-scale, high=scale, size=n)


def simulate_linear_sem(W, n, noise="gaussian", noise_scale=1.0, random_state=None):
    """``n`` rows from the linear SEM ``X = X W + Z`` with independent noise.

    Parameters
    ----------
    W : array, shape (d, d)
        Weighted DAG, ``W[i, j]`` the effect of i on j.
    n : int
        Number of rows.
    noise : {"gaussian", "exponential", "gumbel", "uniform"}
        Noise family: N(0, s^2), Exp(scale s), Gumbel(0, s), U(-s, s).
    noise_scale : float or array of shape (d,)
        The scale ``s``, one for all variables or one per variable.
    random_state : int, numpy.random.Generator or None

    Returns
    -------
    numpy.ndarray, shape (n, d)
    """
    if noise not in NOISE_TYPES:
        raise LatentsemError(f"noise must be one of {list(NOISE_TYPES)}; got {noise!r}.")
    W = np.asarray(W, dtype=float)
    d = W.shape[0]
    order = topological_order(W != 0)
    if order is None:
        raise StructureError("W has a directed cycle; a linear SEM can only be simulated from a DAG.")
    scales = np.broadcast_to(np.asarray(noise_scale, dtype=float), (d,))
    rng = _rng(random_state)
    X = np.zeros((int(n), d))
    for j in order:
        parents = np.flatnonzero(W[:, j])
        X[:, j] = X[:, parents] @ W[parents, j] + _noise(noise, scales[j], int(n), rng)
    return X


def simulate_notears_problem(d, graph_type="ER", edges_per_node=2, n=1000, noise="gaussian", random_state=None):
    """One benchmark problem of the NOTEARS paper: a weighted DAG and data from it.

    ``graph_type="ER", edges_per_node=2`` is "ER2" (``s0 = 2 d``);
    ``graph_type="SF", edges_per_node=4`` is "SF4".

    Returns
    -------
    X : numpy.ndarray, shape (n, d)
    W : numpy.ndarray, shape (d, d)
        The true weighted DAG.
    """
    rng = _rng(random_state)
    B = simulate_dag(d, min(edges_per_node * d, d * (d - 1) // 2), graph_type, rng)
    W = simulate_parameter(B, random_state=rng)
    return simulate_linear_sem(W, n, noise=noise, random_state=rng), W
