"""Path diagrams of a :class:`~latentsem.model.Structure` (or a lavaan parameter table), drawn by ``dot``.

The drawing follows the usual SEM conventions (as in lavaan's semPlot and
Mplus diagrams):

* latent variables are ellipses, observed items are boxes;
* loadings and latent regressions are arrows labelled with their
  standardized estimate (lavaan's ``std.all``) when one is given;
* undirected latent - latent edges (a CPDAG, as LGES returns it) are plain
  lines: the data do not fix their direction;
* residual covariances (lavaan ``~~``) are dashed two-headed arcs, and
  covariances that a fit estimated between latents with no edge in the
  structure (``latent_covariances="free"``) are dotted grey arcs, both
  labelled with the correlation.

Every node and edge gets an id prefixed with ``id_prefix`` so that several
diagrams can be inlined in one HTML page without duplicate element ids. Names
go into the DOT source through :func:`graphviz.escape`, so a variable called
``<b>`` is printed, not read as an HTML-like label.
"""

from __future__ import annotations

import re
from typing import Mapping

from ..exceptions import LatentsemError
from ..model import Structure

_LATENT_STYLE = {"shape": "ellipse", "style": "filled", "fillcolor": "#dbe7f5", "color": "#2f5d8a",
                 "fontname": "Helvetica", "fontsize": "12", "penwidth": "1.3"}
_ITEM_STYLE = {"shape": "box", "style": "filled", "fillcolor": "#f7f7f7", "color": "#555555",
               "fontname": "Helvetica", "fontsize": "10", "height": "0.3", "margin": "0.06,0.03"}
_EDGE_FONT = {"fontname": "Helvetica", "fontsize": "9", "fontcolor": "#333333"}
# Above this many items a top-to-bottom drawing gets too wide to read when scaled to a page, so
# the items are stacked in a column instead (left to right).
WIDE_MODEL_ITEMS = 14
_SVG_START = re.compile(r"<svg\b")
_SAFE_ID = re.compile(r"[^A-Za-z0-9_-]+")


def format_coefficient(value) -> str:
    """A standardized coefficient as printed on an edge: two decimals (``0.77``, ``-0.45``); ``""`` for None."""
    if value is None:
        return ""
    return f"{float(value):.2f}"


def _pair(a, b):
    return tuple(sorted((a, b)))


def diagram_edges(model):
    """Nodes and edges to draw for a Structure or a lavaan :class:`~latentsem.syntax.ParameterTable`.

    Returns
    -------
    latent, observed : list of str
    edges : list of (source, target, type)
        ``type`` as in :class:`~latentsem.model.Edge`. For a parameter table:
        ``=~`` and ``~`` rows are arrows (``y ~ x`` is x -> y, observed
        regressors included), free ``~~`` rows between two variables are
        covariances (between latents as well), variances and fixed zero
        covariances are not drawn.
    """
    if isinstance(model, Structure):
        return list(model.latent), list(model.observed), [(e.source, e.target, e.type) for e in model.edges]
    rows = list(model)
    edges = []
    for r in rows:
        if r.op == "=~":
            edges.append((r.lhs, r.rhs, "directed"))
        elif r.op == "~":
            edges.append((r.rhs, r.lhs, "directed"))
        elif r.op == "~~" and r.lhs != r.rhs and (r.free or r.value not in (0, 0.0)):
            edges.append((r.lhs, r.rhs, "covariance"))
    return list(model.latent), list(model.observed), edges


def path_diagram_source(model, *, loadings: Mapping | None = None,
                        correlations: Mapping | None = None, id_prefix: str = "d", rankdir: str | None = None):
    """The :class:`graphviz.Digraph` of a model (no rendering, so no ``dot`` needed).

    Parameters
    ----------
    model : Structure or ParameterTable
        The model to draw (a parameter table for lavaan syntax that a
        Structure cannot express, e.g. observed regressors).
    loadings : mapping of (source, target) -> float, optional
        Standardized coefficients of directed edges (loadings and
        regressions, keyed cause -> effect), printed on the arrows.
    correlations : mapping of (a, b) -> float, optional
        Standardized covariances. Pairs joined by a covariance or an
        undirected edge label that edge; latent pairs with no edge are drawn
        as dotted grey arcs (covariances a fit freed).
    id_prefix : str
        Prefix of every node and edge id in the SVG.
    rankdir : {"TB", "LR"}, optional
        Top to bottom (latents above their items) or left to right. Default:
        "TB" up to :data:`WIDE_MODEL_ITEMS` drawn items, "LR" above.

    Returns
    -------
    graphviz.Digraph
    """
    import graphviz

    latent_names, observed_names, edges = diagram_edges(model)
    loadings = dict(loadings or {})
    correlations = {_pair(*k): v for k, v in (correlations or {}).items()}
    prefix = _SAFE_ID.sub("_", id_prefix) or "d"
    node_id = {name: f"{prefix}-l{i}" for i, name in enumerate(latent_names)}
    node_id.update({name: f"{prefix}-o{i}" for i, name in enumerate(observed_names)})
    latent = set(latent_names)
    used = {end for a, b, _ in edges for end in (a, b)}
    n_items = sum(1 for name in observed_names if name in used)
    if rankdir is None:
        rankdir = "LR" if n_items > WIDE_MODEL_ITEMS else "TB"
    if rankdir not in ("TB", "LR"):
        raise LatentsemError(f"The 'rankdir' parameter of path_diagram must be 'TB' or 'LR'. Got {rankdir!r} instead.")

    dot = graphviz.Digraph(name=prefix, graph_attr={
        "rankdir": rankdir, "nodesep": "0.12", "ranksep": "0.7", "bgcolor": "transparent",
        "id": f"{prefix}-graph", "fontname": "Helvetica"})
    dot.attr("edge", arrowsize="0.6", color="#444444", **_EDGE_FONT)
    if rankdir == "LR":
        # In LR mode dot stacks the latents bottom-up in declaration order; declared in reverse they
        # read top-down (E1..E5 under L1, then L2's items), as checked on a five-factor model.
        latent_names, edges = latent_names[::-1], edges[::-1]
    for name in latent_names:
        dot.node(node_id[name], label=graphviz.escape(str(name)), id=node_id[name], **_LATENT_STYLE)
    for name in observed_names:
        if name in used:
            dot.node(node_id[name], label=graphviz.escape(str(name)), id=node_id[name], **_ITEM_STYLE)

    drawn_pairs = set()
    for k, (source, target, kind) in enumerate(edges):
        attrs = {"id": f"{prefix}-e{k}"}
        pair = _pair(source, target)
        if kind == "directed":
            attrs["label"] = format_coefficient(loadings.get((source, target)))
            if source in latent and target in latent:
                attrs.update(penwidth="1.6", color="#1f4e79")
        elif kind == "undirected":
            attrs.update(dir="none", penwidth="1.6", color="#1f4e79",
                         label=format_coefficient(correlations.get(pair)))
        else:  # a covariance never pulls the layout apart
            colour = "#1f4e79" if set(pair) <= latent else "#8a3b12"
            attrs.update(dir="both", style="dashed", constraint="false", color=colour,
                         fontcolor=colour, label=format_coefficient(correlations.get(pair)))
        drawn_pairs.add(pair)
        dot.edge(node_id[source], node_id[target], **{k: v for k, v in attrs.items() if v != ""})

    for k, (pair, value) in enumerate(sorted(correlations.items())):
        if pair in drawn_pairs or not set(pair) <= latent:
            continue
        dot.edge(node_id[pair[0]], node_id[pair[1]], id=f"{prefix}-c{k}", dir="both", style="dotted",
                 constraint="false", color="#888888", fontcolor="#666666", label=format_coefficient(value))
    return dot


def path_diagram(model, *, loadings: Mapping | None = None,
                 correlations: Mapping | None = None, id_prefix: str = "d", rankdir: str | None = None) -> str:
    """Draw a Structure or parameter table as an SVG path diagram (a complete SVG document).

    Parameters are those of :func:`path_diagram_source`.

    Returns
    -------
    str
        The SVG text that ``dot -Tsvg`` writes.

    Raises
    ------
    LatentsemError
        When Graphviz's ``dot`` program is not installed or fails.
    """
    source = path_diagram_source(model, loadings=loadings, correlations=correlations, id_prefix=id_prefix,
                                 rankdir=rankdir)
    return run_dot(source, "svg", encoding="utf-8")


def run_dot(source, fmt, encoding=None):
    """``source.pipe`` through Graphviz's ``dot``, with one-line errors when it is missing or fails."""
    import graphviz

    try:
        return source.pipe(format=fmt, encoding=encoding)
    except graphviz.ExecutableNotFound:
        raise LatentsemError("Graphviz's `dot` program is not installed; install Graphviz "
                             "(e.g. `apt-get install graphviz`) to draw diagrams.") from None
    except graphviz.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise LatentsemError(f"Graphviz's `dot` failed to draw the diagram ({detail[0] if detail else exc}); "
                             "check the Graphviz installation.") from None


def inline_svg(svg: str) -> str:
    """The ``<svg>`` element of an SVG document, without the XML prolog and DOCTYPE, for inlining in HTML."""
    match = _SVG_START.search(svg)
    if match is None:
        raise LatentsemError("The path diagram is not SVG text (no <svg> element); check the Graphviz installation.")
    return svg[match.start():].strip()


def dot_version() -> str | None:
    """Graphviz's version as ``dot -V`` reports it, or None when ``dot`` is not installed."""
    import graphviz

    try:
        return ".".join(str(part) for part in graphviz.version())
    except (graphviz.ExecutableNotFound, graphviz.CalledProcessError, RuntimeError):
        return None
