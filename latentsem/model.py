"""The structure of a partially observed linear causal model.

A :class:`Structure` names observed and latent variables and lists edges:

* ``directed`` latent -> observed (loadings) and latent -> latent,
* ``undirected`` latent - latent (a CPDAG among latents, as LGES returns),
* ``covariance`` between two variables (residual covariances, ``~~`` in lavaan).

Observed variables are leaves (Definition 1 with F_XX = 0, as in generalized
N factor models, Definition 2). Latent groups partition the latents; members of
a group are mutually non-adjacent (Definition 2 (iii)).

JSON schema (documented in README.md)::

    {"observed": [...], "latent": ["L1", ...], "groups": [["L1"], ["L2", "L3"]],
     "edges": [{"source": "L1", "target": "x1", "type": "directed"},
               {"source": "L1", "target": "L2", "type": "undirected"}],
     ...metadata}

Everything besides those four keys is metadata and round-trips unchanged.
The type holds no parsing, solving or rendering: :mod:`latentsem.syntax`
converts it to and from lavaan syntax, :mod:`latentsem.score` and
:mod:`latentsem.fit` fit it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from .exceptions import StructureError
from .graph import has_directed_cycle, pdag_to_dag, topological_order

EDGE_TYPES = ("directed", "undirected", "covariance")
_SCHEMA_KEYS = ("observed", "latent", "groups", "edges")


@dataclass(frozen=True)
class Edge:
    """One edge. ``undirected`` and ``covariance`` edges are unordered."""

    source: str
    target: str
    type: str = "directed"

    def key(self):
        """Identity used for set comparisons (unordered for symmetric types)."""
        if self.type == "directed":
            return (self.type, self.source, self.target)
        return (self.type, *sorted((self.source, self.target)))

    def to_dict(self):
        return {"source": self.source, "target": self.target, "type": self.type}


@dataclass(frozen=True)
class Structure:
    """A latent measurement + structural model (immutable).

    Parameters
    ----------
    observed : sequence of str
        Observed variable names, in data column order.
    latent : sequence of str
        Latent variable names.
    edges : sequence of Edge
        The edges; see the module docstring for the allowed kinds.
    groups : sequence of sequence of str, optional
        A partition of ``latent`` into groups (Definition 2). Defaults to one
        group per latent.
    metadata : mapping, optional
        Free-form information (sample size, delta, log-likelihood, ...) that is
        written to and read from JSON beside the schema keys.
    """

    observed: tuple = ()
    latent: tuple = ()
    edges: tuple = ()
    groups: tuple = ()
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "observed", tuple(self.observed))
        set_(self, "latent", tuple(self.latent))
        edges = tuple(e if isinstance(e, Edge) else Edge(**e) for e in self.edges)
        set_(self, "edges", edges)
        groups = tuple(tuple(g) for g in self.groups) or tuple((name,) for name in self.latent)
        set_(self, "groups", groups)
        set_(self, "metadata", dict(self.metadata))
        self._validate()

    # ------------------------------------------------------------------ checks
    def _validate(self):
        names = self.observed + self.latent
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise StructureError(
                f"Variable names {duplicated} appear more than once; give every observed and latent variable a unique name."
            )
        latent, observed = set(self.latent), set(self.observed)
        seen = set()
        for e in self.edges:
            if e.type not in EDGE_TYPES:
                raise StructureError(f"Edge {e.source}-{e.target} has type {e.type!r}; use one of {list(EDGE_TYPES)}.")
            for end in (e.source, e.target):
                if end not in latent and end not in observed:
                    raise StructureError(f"Edge {e.source}-{e.target} names {end!r}, which is neither observed nor latent; declare it or remove the edge.")
            if e.source == e.target:
                raise StructureError(f"Edge {e.source}-{e.target} is a self-loop; remove it.")
            if e.type == "directed" and e.source in observed:
                raise StructureError(
                    f"Edge {e.source} -> {e.target} leaves an observed variable; observed variables must be leaves (edges go latent -> observed or latent -> latent)."
                )
            if e.type == "undirected" and not (e.source in latent and e.target in latent):
                raise StructureError(f"Undirected edge {e.source} - {e.target} must join two latent variables.")
            pair = frozenset((e.source, e.target))
            if e.type != "covariance":
                if pair in seen:
                    raise StructureError(f"Variables {e.source} and {e.target} are joined by more than one edge; keep one.")
                seen.add(pair)
        grouped = [name for g in self.groups for name in g]
        if sorted(grouped) != sorted(self.latent):
            raise StructureError(
                f"Groups {[list(g) for g in self.groups]} must partition the latent variables {list(self.latent)} (each exactly once)."
            )
        for g in self.groups:
            for a in g:
                for b in g:
                    if a < b and frozenset((a, b)) in seen:
                        raise StructureError(f"Latents {a} and {b} share a group but are adjacent; members of a group must be mutually non-adjacent.")
        if has_directed_cycle(self.latent_directed()):
            raise StructureError("The directed latent-latent edges form a cycle; a structure must be acyclic.")

    # --------------------------------------------------------------- matrices
    def _index(self, names):
        return {n: i for i, n in enumerate(names)}

    def loading_mask(self):
        """Boolean (p, m) matrix: ``[i, j]`` True when latent j -> observed i."""
        obs, lat = self._index(self.observed), self._index(self.latent)
        mask = np.zeros((len(self.observed), len(self.latent)), dtype=bool)
        for e in self.edges:
            if e.type == "directed" and e.target in obs:
                mask[obs[e.target], lat[e.source]] = True
        return mask

    def latent_directed(self):
        """Boolean (m, m) matrix: ``[i, j]`` True when latent i -> latent j."""
        lat = self._index(self.latent)
        D = np.zeros((len(self.latent),) * 2, dtype=bool)
        for e in self.edges:
            if e.type == "directed" and e.source in lat and e.target in lat:
                D[lat[e.source], lat[e.target]] = True
        return D

    def latent_undirected(self):
        """Symmetric boolean (m, m) matrix of undirected latent - latent edges."""
        lat = self._index(self.latent)
        U = np.zeros((len(self.latent),) * 2, dtype=bool)
        for e in self.edges:
            if e.type == "undirected":
                i, j = lat[e.source], lat[e.target]
                U[i, j] = U[j, i] = True
        return U

    def covariances(self):
        """The residual covariance edges as (a, b) name pairs."""
        return [(e.source, e.target) for e in self.edges if e.type == "covariance"]

    # ---------------------------------------------------------------- queries
    def children(self, name):
        return [e.target for e in self.edges if e.type == "directed" and e.source == name]

    def parents(self, name):
        return [e.source for e in self.edges if e.type == "directed" and e.target == name]

    def neighbours(self, name):
        """Latents joined to ``name`` by an undirected edge."""
        return [e.target if e.source == name else e.source
                for e in self.edges if e.type == "undirected" and name in (e.source, e.target)]

    @property
    def is_dag(self):
        """True when no undirected latent edge remains."""
        return not any(e.type == "undirected" for e in self.edges)

    def latent_order(self):
        """Latent names in a topological order of a consistent extension."""
        order = topological_order(self.to_dag().latent_directed())
        return [self.latent[i] for i in order]

    # ------------------------------------------------------------ conversions
    def to_dag(self):
        """A DAG member of this structure's equivalence class (consistent extension).

        Undirected latent edges are oriented by Dor & Tarsi's algorithm; every
        member of a Markov equivalence class has the same maximum likelihood,
        so the score and the fit do not depend on which member is returned.
        """
        if self.is_dag:
            return self
        D = pdag_to_dag(self.latent_directed(), self.latent_undirected())
        if D is None:
            raise StructureError("The latent CPDAG has no consistent extension (no DAG orients its undirected edges without a new v-structure or cycle).")
        kept = [e for e in self.edges if e.type != "undirected"]
        lat = self._index(self.latent)
        for e in self.edges:
            if e.type == "undirected":
                i, j = lat[e.source], lat[e.target]
                src, dst = (e.source, e.target) if D[i, j] else (e.target, e.source)
                kept.append(Edge(src, dst, "directed"))
        return self.replace(edges=kept)

    def replace(self, **changes):
        """A copy with some fields replaced (the structure is immutable)."""
        fields = dict(observed=self.observed, latent=self.latent, edges=self.edges,
                      groups=self.groups, metadata=self.metadata)
        fields.update(changes)
        if "latent" in changes and "groups" not in changes:
            kept = set(fields["latent"])
            fields["groups"] = tuple(tuple(n for n in g if n in kept) for g in self.groups if any(n in kept for n in g))
        return Structure(**fields)

    @classmethod
    def from_masks(cls, observed, latent, loadings, directed=None, undirected=None,
                   groups=None, metadata=None):
        """Build a structure from a (p, m) loading mask and (m, m) latent matrices."""
        loadings = np.asarray(loadings, dtype=bool)
        m = len(latent)
        directed = np.zeros((m, m), bool) if directed is None else np.asarray(directed, bool)
        undirected = np.zeros((m, m), bool) if undirected is None else np.asarray(undirected, bool)
        edges = []
        for j, lname in enumerate(latent):
            for i, oname in enumerate(observed):
                if loadings[i, j]:
                    edges.append(Edge(lname, oname, "directed"))
        for i in range(m):
            for j in range(m):
                if directed[i, j]:
                    edges.append(Edge(latent[i], latent[j], "directed"))
                if i < j and undirected[i, j]:
                    edges.append(Edge(latent[i], latent[j], "undirected"))
        return cls(observed, latent, edges, groups or (), metadata or {})

    # ------------------------------------------------------------------- JSON
    def to_dict(self):
        out = {
            "observed": list(self.observed),
            "latent": list(self.latent),
            "groups": [list(g) for g in self.groups],
            "edges": [e.to_dict() for e in self.edges],
        }
        out.update({k: v for k, v in self.metadata.items() if k not in _SCHEMA_KEYS})
        return out

    @classmethod
    def from_dict(cls, data):
        if not isinstance(data, Mapping):
            raise StructureError("A structure must be a JSON object with keys 'observed', 'latent', 'groups' and 'edges'.")
        missing = [k for k in ("observed", "latent", "edges") if k not in data]
        if missing:
            raise StructureError(f"The structure JSON lacks the keys {missing}; see the schema in README.md.")
        try:
            edges = [Edge(e["source"], e["target"], e.get("type", "directed")) for e in data["edges"]]
        except (KeyError, TypeError) as exc:
            raise StructureError(f"Every edge needs 'source' and 'target' (and optionally 'type'); got a malformed edge ({exc}).") from None
        metadata = {k: v for k, v in data.items() if k not in _SCHEMA_KEYS}
        return cls(data["observed"], data["latent"], edges, data.get("groups") or (), metadata)

    def to_json(self, path=None, indent=2):
        """The JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent, default=_json_default) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, source):
        """Read a structure from a JSON string or a path to a JSON file."""
        text = str(source)
        if not text.lstrip().startswith("{"):
            path = Path(source)
            if not path.is_file():
                raise StructureError(f"Model file {str(path)!r} does not exist; check the path.")
            text = path.read_text()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StructureError(f"The model JSON is not valid JSON ({exc.msg} at line {exc.lineno}); fix the file.") from None
        return cls.from_dict(data)

    # ---------------------------------------------------------------- display
    def summary(self):
        """Readable multi-line text: each latent with its items, latent edges."""
        lines = []
        for lname in self.latent:
            items = [c for c in self.children(lname) if c in set(self.observed)]
            lines.append(f"{lname}: {', '.join(items) if items else '(no items)'}")
        latent = set(self.latent)
        arrows = [f"{e.source} -> {e.target}" for e in self.edges
                  if e.type == "directed" and e.source in latent and e.target in latent]
        arrows += [f"{e.source} - {e.target}" for e in self.edges if e.type == "undirected"]
        lines.append("latent edges: " + ("; ".join(arrows) if arrows else "none"))
        covs = [f"{a} ~~ {b}" for a, b in self.covariances()]
        if covs:
            lines.append("covariances: " + "; ".join(covs))
        return "\n".join(lines)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def simple_structure(clusters: Mapping[str, Iterable[str]], latent_edges=(), observed=None):
    """Convenience: ``{"F1": ["x1", "x2"], ...}`` plus latent edges ``[(a, b, type)]``."""
    latent = list(clusters)
    obs = list(observed) if observed is not None else list(dict.fromkeys(x for items in clusters.values() for x in items))
    edges = [Edge(f, x) for f, items in clusters.items() for x in items]
    edges += [Edge(a, b, t) for a, b, t in latent_edges]
    return Structure(obs, latent, edges)
