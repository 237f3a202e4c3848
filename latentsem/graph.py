"""Graph algorithms on adjacency matrices, shared by structures, search and metrics.

Conventions: ``D[i, j]`` True means a directed edge i -> j; ``U`` is a symmetric
boolean matrix of undirected edges i - j. A PDAG is the pair (D, U).
Functions here do no input checking beyond what their result needs: the
structure type validates names and shapes before calling them.
"""

from __future__ import annotations

import numpy as np


def topological_order(D):
    """Return a topological order of the DAG ``D`` or ``None`` if it has a cycle.

    Ties are broken by index, so the order is deterministic.
    """
    D = np.asarray(D, dtype=bool)
    indegree = D.sum(axis=0).astype(int)
    ready = sorted(np.flatnonzero(indegree == 0).tolist())
    order = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for child in np.flatnonzero(D[node]):
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(int(child))
        ready.sort()
    return order if len(order) == D.shape[0] else None


def has_directed_cycle(D):
    """True when the directed part ``D`` contains a cycle."""
    return topological_order(D) is None


def is_connected(adjacency):
    """True when the undirected graph with boolean ``adjacency`` (symmetric) is connected."""
    seen, stack = {0}, [0]
    while stack:
        for j in np.flatnonzero(adjacency[stack.pop()]):
            if int(j) not in seen:
                seen.add(int(j))
                stack.append(int(j))
    return len(seen) == adjacency.shape[0]


def pdag_to_dag(D, U):
    """A consistent extension of the PDAG (D, U): a DAG in the same class.

    Dor & Tarsi (1992): repeatedly remove a sink-like vertex x (no outgoing
    directed edge, and every undirected neighbour of x adjacent to all other
    neighbours of x), orienting x's undirected edges into x.

    Returns the directed adjacency matrix, or ``None`` when no consistent
    extension exists.
    """
    D = np.array(D, dtype=bool)
    U = np.array(U, dtype=bool)
    n = D.shape[0]
    result = D.copy()
    alive = np.ones(n, dtype=bool)
    for _ in range(n):
        picked = None
        for x in np.flatnonzero(alive):
            if D[x][alive].any():
                continue  # x still has an outgoing directed edge
            und = np.flatnonzero(U[x] & alive)
            adj = np.flatnonzero((D[x] | D[:, x] | U[x]) & alive)
            if all(
                all(y == z or D[y, z] or D[z, y] or U[y, z] for z in adj)
                for y in und
            ):
                picked = x
                break
        if picked is None:
            return None
        for y in np.flatnonzero(U[picked] & alive):
            result[y, picked] = True  # orient y -> picked
        alive[picked] = False
    return result


def skeleton(D, U=None):
    """Symmetric adjacency of the skeleton of (D, U)."""
    D = np.asarray(D, dtype=bool)
    S = D | D.T
    if U is not None:
        S = S | np.asarray(U, dtype=bool)
    return S


def dag_to_cpdag(D):
    """The CPDAG (essential graph) of the DAG ``D``, as a PDAG ``(D_cpdag, U)``.

    Meek (1995): keep the skeleton, orient the v-structures a -> c <- b (a, b
    non-adjacent), then close under Meek's rules R1-R3; starting from a DAG's
    pattern these three rules give the CPDAG (R4 is only needed with background
    knowledge). An edge stays directed exactly when it is compelled, i.e. has
    the same orientation in every DAG of the Markov equivalence class.

    ``D`` must be acyclic (not checked). Returns the compelled directed edges
    ``D_cpdag`` (``[i, j]`` True for i -> j) and the symmetric undirected ``U``.
    """
    D = np.asarray(D, dtype=bool)
    n = D.shape[0]
    adjacent = D | D.T
    directed = np.zeros((n, n), dtype=bool)
    for c in range(n):
        parents = np.flatnonzero(D[:, c])
        for k, a in enumerate(parents):
            for b in parents[k + 1:]:
                if not adjacent[a, b]:
                    directed[a, c] = directed[b, c] = True
    undirected = adjacent & ~directed & ~directed.T
    changed = True
    while changed:
        changed = False
        for i, j in zip(*np.nonzero(undirected)):
            if undirected[i, j] and _meek_orients(i, j, directed, undirected, adjacent):
                directed[i, j] = True
                undirected[i, j] = undirected[j, i] = False
                changed = True
    return directed, undirected


def _meek_orients(i, j, directed, undirected, adjacent):
    """True when one of Meek's rules R1-R3 orients the undirected edge i - j as i -> j."""
    into_i = np.flatnonzero(directed[:, i])
    # R1: k -> i - j with k, j non-adjacent (else a new v-structure at i).
    if np.any(~adjacent[into_i, j]):
        return True
    # R2: i -> k -> j (else a directed cycle).
    if np.any(directed[i] & directed[:, j]):
        return True
    # R3: i - k -> j and i - l -> j with k, l non-adjacent (else a cycle or a new v-structure).
    ks = np.flatnonzero(undirected[i] & directed[:, j])
    for a, k in enumerate(ks):
        for l in ks[a + 1:]:
            if not adjacent[k, l]:
                return True
    return False


def consistent_extensions(D, U, limit=120):
    """Up to ``limit`` distinct consistent extensions of the PDAG (D, U).

    Dor & Tarsi's sink removal (:func:`pdag_to_dag`) branched over every vertex
    that may be removed next: whenever an extension exists any such choice
    completes, so every leaf of the search is a DAG of the class, and the
    search stops as soon as ``limit`` distinct DAGs are found.
    """
    D = np.asarray(D, dtype=bool)
    U = np.asarray(U, dtype=bool)
    n = D.shape[0]
    found, seen = [], set()

    def sinks(alive):
        out = []
        for x in np.flatnonzero(alive):
            if D[x][alive].any():
                continue
            und = np.flatnonzero(U[x] & alive)
            adj = np.flatnonzero((D[x] | D[:, x] | U[x]) & alive)
            if all(all(y == z or D[y, z] or D[z, y] or U[y, z] for z in adj) for y in und):
                out.append(x)
        return out

    def search(alive, result):
        if len(found) >= limit:
            return
        if not alive.any():
            key = result.tobytes()
            if key not in seen:
                seen.add(key)
                found.append(result.copy())
            return
        for x in sinks(alive):
            nxt = result.copy()
            for y in np.flatnonzero(U[x] & alive):
                nxt[y, x] = True
            still = alive.copy()
            still[x] = False
            search(still, nxt)
            if len(found) >= limit:
                return

    search(np.ones(n, dtype=bool), D.copy())
    return found
