"""Baseline structure learners for the synthetic LGES benchmark, each returning a Structure.

Two baselines, both kept out of the package because only the benchmark uses them:

* **GIN** (Xie et al. 2020) from causal-learn, ``GIN_MI``: clusters of observed
  variables sharing one latent parent, then a causal order of those latents.
  :func:`gin_graph_to_structure` converts causal-learn's ``GeneralGraph``
  (latents ``L1..``, observed ``X<column + 1>``) into a :class:`Structure`.
  GIN assumes non-Gaussian noise.
* **Exploratory factor analysis** as applied researchers run it
  (:func:`efa_structure`): the number of factors from Horn's parallel analysis
  (:func:`parallel_analysis`), factor_analyzer's minres (or ML) extraction,
  oblimin rotation, items joined to factors with ``|loading| >= 0.3`` (each
  item keeps at least its largest loading), and latent edges either from the
  factor correlations (``|phi| >= 0.3`` -> undirected edge) or none.
"""

from __future__ import annotations

import contextlib
import warnings
from unittest import mock

import numpy as np

from latentsem.exceptions import LatentsemError
from latentsem.graph import pdag_to_dag
from latentsem.model import Edge, Structure

LOADING_THRESHOLD = 0.3
FACTOR_CORRELATION_THRESHOLD = 0.3
EFA_METHODS = ("minres", "ml")
EFA_LATENT_EDGES = ("corr", "none")


# ------------------------------------------------------------------- GIN
def gin_structure(X, *, cached_dependence=True):
    """Run causal-learn's ``GIN_MI`` on the frame ``X`` and return a Structure.

    Parameters
    ----------
    X : pandas.DataFrame
        Observed data; column names become the observed variable names.
    cached_dependence : bool
        Compute GIN_MI's dependence statistic with the Gram matrices of the
        observed columns cached (:func:`cached_gin_dependence`). The statistic
        is the same number (to rounding), the search is the library's own code,
        and the run is several times faster.

    Returns
    -------
    Structure
        Latents ``L1..`` in GIN's causal order (GIN_MI joins every earlier
        latent to every later one), each with its cluster of observed children.
    """
    from causallearn.search.HiddenCausal.GIN.GIN import GIN_MI

    data = np.asarray(X, dtype=float)
    context = cached_gin_dependence(data) if cached_dependence else contextlib.nullcontext()
    with context:
        graph, _ = GIN_MI(data)
    return gin_graph_to_structure(graph, list(X.columns))


@contextlib.contextmanager
def cached_gin_dependence(data):
    """Within the block, causal-learn's GIN uses a cached ``cal_dep_for_gin`` for ``data``.

    ``cal_dep_for_gin(data, cov, X, Z)`` averages, over ``z`` in ``Z``, the HSIC
    statistic ``1/n sum(Kc_e' * Lc_z)`` between the GIN residual ``e = data[:, X] w``
    and ``data[:, z]`` (causal-learn's ``hsic_test_gamma(e, z)[0]``, with its
    own kernel widths and centered Gram matrices). The library recomputes both
    Gram matrices and a p-value it discards for every pair; here each column's
    centered Gram matrix is computed once per run and stacked, the residual's
    once per call, and the |Z| statistics come from one matrix-vector product
    (the same sums in another order, so equal to rounding). Calls with another
    array fall through to the library function.
    """
    from causallearn.search.FCMBased.lingam.hsic import get_gram_matrix, get_kernel_width
    from causallearn.search.HiddenCausal.GIN import GIN as gin_module

    original = gin_module.cal_dep_for_gin
    n, p = data.shape
    stacked = []  # row z: Lc_z' flattened, so that row . vec(Kc_e) = sum(Kc_e' * Lc_z)

    def column_grams():
        if not stacked:
            rows = np.empty((p, n * n))
            for z in range(p):
                column = data[:, [z]]
                rows[z] = get_gram_matrix(column, get_kernel_width(column))[1].T.ravel()
            stacked.append(rows)
        return stacked[0]

    def cal_dep_for_gin(data_, cov, X, Z):
        if data_ is not data:
            return original(data_, cov, X, Z)
        e = gin_module.cal_e_with_gin(data_, cov, X, Z).reshape(-1, 1)
        Kc = get_gram_matrix(e, get_kernel_width(e))[1]
        statistics = column_grams() @ Kc.ravel() / n
        return float(statistics[list(Z)].sum() / len(Z))

    with mock.patch.object(gin_module, "cal_dep_for_gin", cal_dep_for_gin):
        yield


def gin_graph_to_structure(graph, columns):
    """Convert a causal-learn ``GeneralGraph`` from GIN / GIN_MI into a Structure.

    Nodes named ``X<k>`` are observed column ``k - 1`` (renamed to
    ``columns[k - 1]``); every other node is latent. Edges ``a --> b`` become
    directed edges, ``a --- b`` between latents undirected ones (GIN's
    unordered clusters). Columns GIN left out are observed without parents.
    """
    from causallearn.graph.Endpoint import Endpoint

    def name(node):
        label = node.get_name()
        if label.startswith("X") and label[1:].isdigit():
            k = int(label[1:]) - 1
            if not 0 <= k < len(columns):
                raise LatentsemError(f"GIN returned node {label} but the data have {len(columns)} columns; pass the frame GIN ran on.")
            return columns[k], False
        return label, True

    latent, edges = [], []
    for node in graph.get_nodes():
        label, is_latent = name(node)
        if is_latent:
            latent.append(label)
    for edge in graph.get_graph_edges():
        a, _ = name(edge.get_node1())
        b, _ = name(edge.get_node2())
        ends = (edge.get_endpoint1(), edge.get_endpoint2())
        if ends == (Endpoint.TAIL, Endpoint.ARROW):
            edges.append(Edge(a, b, "directed"))
        elif ends == (Endpoint.ARROW, Endpoint.TAIL):
            edges.append(Edge(b, a, "directed"))
        elif ends == (Endpoint.TAIL, Endpoint.TAIL):
            edges.append(Edge(a, b, "undirected"))
        else:
            raise LatentsemError(f"GIN returned edge {edge} with endpoints {ends}; only -->, <-- and --- are converted.")
    return Structure(list(columns), latent, edges, metadata={"method": "GIN_MI (causal-learn)"})


# ------------------------------------------------------------------- EFA
def parallel_analysis(X, *, n_draws=100, quantile=0.95, random_state=0):
    """Horn's parallel analysis: how many factors to retain.

    Eigenvalues of the sample correlation matrix are compared, in decreasing
    order, with the ``quantile`` of the same-rank eigenvalues of correlation
    matrices of ``n_draws`` standard normal data sets of the same shape. The
    number of factors is the number of leading eigenvalues that exceed their
    threshold (at least 1).

    Returns
    -------
    n_factors : int
    observed : ndarray, shape (p,)
        Eigenvalues of the data's correlation matrix, decreasing.
    thresholds : ndarray, shape (p,)
        The ``quantile`` of the random eigenvalues, rank by rank.
    """
    data = np.asarray(X, dtype=float)
    n, p = data.shape
    rng = np.random.default_rng(random_state)
    observed = np.linalg.eigvalsh(np.corrcoef(data, rowvar=False))[::-1]
    random = np.empty((n_draws, p))
    for k in range(n_draws):
        random[k] = np.linalg.eigvalsh(np.corrcoef(rng.standard_normal((n, p)), rowvar=False))[::-1]
    thresholds = np.quantile(random, quantile, axis=0)
    above = observed > thresholds
    n_factors = p if above.all() else int(np.argmin(above))
    return max(n_factors, 1), observed, thresholds


def efa_loadings(X, n_factors, *, method="minres"):
    """Oblimin-rotated loadings ``(p, k)`` and factor correlations ``(k, k)``.

    factor_analyzer extracts unrotated loadings; the rotation is applied here
    with its ``Rotator`` so that loadings and ``phi`` stay aligned
    (``FactorAnalyzer`` re-sorts the loading columns after rotating but not
    ``phi_``). Factors are sign-flipped to positive column sums.
    """
    from factor_analyzer import FactorAnalyzer, Rotator

    if method not in EFA_METHODS:
        raise LatentsemError(f"The 'method' parameter of efa_loadings must be one of {list(EFA_METHODS)}. Got {method!r} instead.")
    with warnings.catch_warnings(), _factor_analyzer_sklearn_compat():
        warnings.simplefilter("ignore")  # factor_analyzer warns on every 1-factor fit and on Heywood bounds
        fa = FactorAnalyzer(n_factors=n_factors, rotation=None, method=method).fit(np.asarray(X, dtype=float))
        loadings = np.array(fa.loadings_, dtype=float)
        phi = np.eye(n_factors)
        if n_factors > 1:
            rotator = Rotator(method="oblimin")
            loadings = rotator.fit_transform(loadings)
            phi = np.array(rotator.phi_, dtype=float)
    signs = np.where(loadings.sum(axis=0) < 0, -1.0, 1.0)
    return loadings * signs, phi * np.outer(signs, signs)


@contextlib.contextmanager
def _factor_analyzer_sklearn_compat():
    """Let factor_analyzer 0.5.1 run on scikit-learn >= 1.8.

    ``FactorAnalyzer.fit`` calls ``check_array(X, force_all_finite=...)``;
    scikit-learn renamed the argument ``ensure_all_finite`` in 1.6 and removed
    the old name in 1.8 (a TypeError). Within the block the call is forwarded
    under the new name; nothing changes on older scikit-learn.
    """
    import inspect

    import factor_analyzer.factor_analyzer as fa_module
    from sklearn.utils import check_array

    if "force_all_finite" in inspect.signature(check_array).parameters:
        yield
        return

    def compatible_check_array(*args, force_all_finite=True, **kwargs):
        return check_array(*args, ensure_all_finite=force_all_finite, **kwargs)

    with mock.patch.object(fa_module, "check_array", compatible_check_array):
        yield


def efa_structure(X, *, latent_edges="corr", method="minres", n_factors=None,
                  loading_threshold=LOADING_THRESHOLD, correlation_threshold=FACTOR_CORRELATION_THRESHOLD,
                  random_state=0):
    """Exploratory factor analysis read as a latent structure.

    Parameters
    ----------
    X : pandas.DataFrame
    latent_edges : {"corr", "none"}
        ``"corr"``: an undirected edge between two factors whose oblimin
        correlation has ``|phi| >= correlation_threshold``; ``"none"``: no
        latent edges (independent factors).
    method : {"minres", "ml"}
        factor_analyzer's extraction.
    n_factors : int, optional
        Defaults to Horn's parallel analysis (:func:`parallel_analysis`,
        seeded with ``random_state``).
    loading_threshold : float
        ``|loading| >= threshold`` gives an edge factor -> item; every item keeps
        its largest loading even when below the threshold.

    Returns
    -------
    Structure
        Latents ``F1..Fk``. EFA says nothing about causal direction, so factor
        correlations are undirected edges; when they do not form a chordal
        graph (no DAG has that skeleton without a v-structure) they are
        oriented by factor order instead, and ``metadata["latent_edges"]``
        says so.
    """
    if latent_edges not in EFA_LATENT_EDGES:
        raise LatentsemError(f"The 'latent_edges' parameter of efa_structure must be one of {list(EFA_LATENT_EDGES)}. Got {latent_edges!r} instead.")
    columns = list(X.columns)
    if n_factors is None:
        n_factors = parallel_analysis(X, random_state=random_state)[0]
    loadings, phi = efa_loadings(X, n_factors, method=method)
    mask = np.abs(loadings) >= loading_threshold
    mask[np.arange(len(columns)), np.argmax(np.abs(loadings), axis=1)] = True
    latent = [f"F{j + 1}" for j in range(n_factors)]
    if latent_edges == "corr":
        directed, undirected, how = latent_edges_from_correlations(phi, correlation_threshold)
    else:
        directed = undirected = np.zeros((n_factors, n_factors), dtype=bool)
        how = "none"
    metadata = {"method": f"EFA {method} + oblimin", "n_factors": int(n_factors), "latent_edges": how}
    return Structure.from_masks(columns, latent, mask, directed, undirected, metadata=metadata)


def latent_edges_from_correlations(phi, threshold=FACTOR_CORRELATION_THRESHOLD):
    """Latent edges ``(directed, undirected, description)`` from a factor correlation matrix.

    Factors ``i, j`` with ``|phi[i, j]| >= threshold`` are joined. A correlation
    has no direction, so the edges are undirected, which is a valid CPDAG only
    when the graph is chordal (a DAG with that skeleton and no v-structure
    exists; Dor & Tarsi's extension succeeds). Otherwise the same edges are
    oriented from the lower to the higher factor index.
    """
    undirected = np.abs(np.asarray(phi, dtype=float)) >= threshold
    np.fill_diagonal(undirected, False)
    directed = np.zeros_like(undirected)
    if undirected.any() and pdag_to_dag(directed, undirected) is None:
        return np.triu(undirected, k=1), np.zeros_like(undirected), "oriented by factor order (factor correlations not chordal)"
    return directed, undirected, "undirected (factor correlations)"
