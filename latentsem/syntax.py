"""lavaan model syntax: a parameter table, a parser, lavaan's defaults, and exports.

The :class:`ParameterTable` is lavaan's "partable" reduced to what a
single-group, covariance-only ML fit needs: rows ``lhs op rhs`` with ``free``,
``value`` (the fixed value, or ``None`` for a free parameter), ``label``
(shared labels are equality constraints), ``user`` (written by the user vs
added by the defaults) and ``exo`` (a variance/covariance of observed
exogenous variables, held at its sample value as lavaan's ``fixed.x=TRUE``).

Three layers, in the order of the data flow:

* :func:`parse_lavaan` reads the operators ``=~``, ``~`` and ``~~`` with
  modifiers ``1*x`` (fixed), ``NA*x`` (free) and ``a*x`` (label), comments
  (``#``, ``!``), ``;`` separators and statements continued on the next line,
  and applies lavaan's ``auto.fix.first`` (the first indicator of each latent
  is fixed at 1 unless it is given a value or ``NA``).
* :func:`complete_table` adds the parameters lavaan's ``sem()`` adds
  (``auto.var``, ``auto.cov.lv.x``, ``auto.cov.y``, ``fixed.x``) under one of
  two semantics for latent covariances (:data:`LATENT_COVARIANCES`):

  - ``"free"``: lavaan's ``sem()``/``cfa()`` defaults, verified with lavaan
    0.6-14 (``lavaanify(..., auto.cov.lv.x=TRUE, auto.cov.y=TRUE)``):
    exogenous latents covary; the residuals of "pure" dependent variables
    (on the left of some ``~`` and on the right of none, latent or observed
    alike) covary; nothing else does.
  - ``"dag"``: a DAG over the latents; two latents without an edge are
    independent (lavaan ``orthogonal=TRUE`` plus ``auto.cov.y=FALSE``). Only
    covariances written in the model are free.

* :func:`structure_to_table`, :func:`table_to_structure`, :func:`to_lavaan`,
  :func:`to_semopy` and :func:`to_dot` convert between tables, structures
  (:mod:`latentsem.model`) and text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from itertools import combinations
from typing import Iterable, Iterator

from .exceptions import LatentsemError, ModelSyntaxError, StructureError
from .model import Edge, Structure

LATENT_COVARIANCES = ("dag", "free")

SUPPORTED_OPERATORS = ("=~", "~~", "~")
# lavaan operators latentsem does not fit, longest first so "~*~" is not read as "~".
UNSUPPORTED_OPERATORS = {
    "~*~": "scaling factors (~*~)",
    ":=": "defined parameters (:=)",
    "==": "equality constraints (==); give the parameters one shared label instead",
    "<~": "formative indicators (<~)",
    "<": "inequality constraints (<)",
    ">": "inequality constraints (>)",
    "|": "thresholds (|)",
    "%": "multilevel or block syntax (%)",
}
_OPERATOR_RE = re.compile(r"~\*~|=~|~~|:=|==|<~|~|<|>|\||%|=")
_IDENTIFIER_RE = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")
_NUMBER_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


# ============================================================== table types
@dataclass(frozen=True)
class Parameter:
    """One row of a parameter table (lavaan's ``lhs op rhs`` plus modifiers).

    ``value`` is the fixed value when ``free`` is False and ``None`` for a
    free parameter; ``exo`` rows are held at their sample value (fixed.x).
    """

    lhs: str
    op: str
    rhs: str
    free: bool = True
    value: float | None = None
    label: str = ""
    user: bool = True
    exo: bool = False

    def key(self):
        """Identity of the parameter: ``~~`` rows are unordered."""
        if self.op == "~~":
            return (self.op, *sorted((self.lhs, self.rhs)))
        return (self.lhs, self.op, self.rhs)

    def term(self, flavour="lavaan", force_free=False):
        """The right-hand term with its modifier, as lavaan or semopy reads it.

        ``force_free`` marks a first indicator: lavaan fixes it at 1 unless
        told otherwise, so a free one is written ``NA*`` and a labelled
        marker fixed at 1 keeps its label.
        """
        if not self.free and not self.exo:
            if force_free and self.label and self.value == 1.0 and flavour == "lavaan":
                return f"{self.label}*{self.rhs}"
            return f"{_number(self.value)}*{self.rhs}"
        if force_free and flavour == "lavaan":
            return f"NA*{self.rhs}" + (f" + {self.label}*{self.rhs}" if self.label else "")
        if self.label:
            return f"{self.label}*{self.rhs}"
        if force_free:
            # semopy fixes an unmodified first loading at 1 and reads NA as a label: name it instead.
            return f"free_{self.lhs}_{self.rhs}".replace(".", "_") + f"*{self.rhs}"
        return self.rhs


@dataclass(frozen=True)
class ParameterTable:
    """An immutable list of :class:`Parameter` rows with name queries.

    Latent variables are the names on the left of ``=~``; every other name is
    observed. Names keep their order of first appearance.
    """

    rows: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "rows", tuple(self.rows))

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    @property
    def latent(self) -> list[str]:
        return list(dict.fromkeys(r.lhs for r in self.rows if r.op == "=~"))

    @property
    def observed(self) -> list[str]:
        latent = set(self.latent)
        names = (n for r in self.rows for n in (r.lhs, r.rhs))
        return [n for n in dict.fromkeys(names) if n not in latent]

    def indicators(self, latent) -> list[str]:
        return [r.rhs for r in self.rows if r.op == "=~" and r.lhs == latent]

    def find(self, lhs, op, rhs):
        """The row for ``lhs op rhs`` (``~~`` in either order) or ``None``."""
        key = Parameter(lhs, op, rhs).key()
        return next((r for r in self.rows if r.key() == key), None)

    def to_frame(self):
        """The table as a pandas DataFrame (lavaan's partable column names)."""
        import pandas as pd

        columns = ["lhs", "op", "rhs", "free", "value", "label", "user", "exo"]
        return pd.DataFrame([[getattr(r, c) for c in columns] for r in self.rows], columns=columns)

    @classmethod
    def from_frame(cls, frame):
        """Rows from a DataFrame with at least ``lhs``, ``op``, ``rhs`` columns."""
        rows = []
        for rec in frame.to_dict("records"):
            value = rec.get("value")
            value = None if value is None or value != value else float(value)
            free = bool(rec.get("free", value is None))
            rows.append(Parameter(str(rec["lhs"]), str(rec["op"]), str(rec["rhs"]), free, value,
                                  str(rec.get("label") or ""), bool(rec.get("user", True)), bool(rec.get("exo", False))))
        return check_table(cls(rows))

    def to_lavaan(self):
        return to_lavaan(self)


def _number(value):
    return format(float(value), ".15g")


# ==================================================================== parser
@dataclass
class _Statement:
    """Text of one statement with the (line, column) of every character."""

    text: str
    where: list
    lines: dict

    def error(self, message, index):
        index = min(max(index, 0), len(self.where) - 1)
        line, col = self.where[index]
        return ModelSyntaxError(message, line=line, column=col, source_line=self.lines[line])


def _strip_comment(line):
    cut = [i for i in (line.find("#"), line.find("!")) if i >= 0]
    return line[: min(cut)] if cut else line


def _statements(text) -> list[_Statement]:
    """Split into statements: by newline and ``;``; a piece with no operator continues the previous one (lavaan)."""
    source = dict(enumerate(text.splitlines(), start=1))
    statements = []
    for number, raw in source.items():
        body = _strip_comment(raw)
        start = 0
        for piece in body.split(";"):
            where = [(number, start + k + 1) for k in range(len(piece))]
            start += len(piece) + 1
            if not piece.strip():
                continue
            if _OPERATOR_RE.search(piece) or not statements:
                statements.append(_Statement(piece, where, source))
            else:
                last = statements[-1]
                last.text += " " + piece
                last.where += [where[0]] + where
    return statements


def _check_no_dangling_plus(stmt):
    stripped = stmt.text.rstrip()
    if stripped.endswith("+"):
        raise stmt.error("The statement ends with '+'; add the next term or remove the '+'", len(stripped) - 1)


def _split_terms(stmt, start, end):
    """Terms between ``start`` and ``end`` split at '+', as (text, index) pairs."""
    terms, begin = [], start
    for i in range(start, end + 1):
        if i == end or stmt.text[i] == "+":
            chunk = stmt.text[begin:i]
            offset = begin + len(chunk) - len(chunk.lstrip())
            if not chunk.strip():
                raise stmt.error("Empty term (two '+' in a row, or a '+' at an end)", min(i, len(stmt.text) - 1))
            terms.append((chunk.strip(), offset))
            begin = i + 1
    return terms


def _check_name(stmt, name, index, what="variable name"):
    if not _IDENTIFIER_RE.match(name):
        raise stmt.error(f"{name!r} is not a valid {what} (letters, digits, '_' and '.'; not starting with a digit)", index)


def _parse_term(stmt, term, index):
    """``[modifier*]name`` -> (name, free, value, label, whether a value or NA was given)."""
    parts = term.split("*")
    name = parts[-1].strip()
    name_index = index + term.rfind(parts[-1]) + (len(parts[-1]) - len(parts[-1].lstrip()))
    if name == "1" and len(parts) == 1:
        raise stmt.error("Intercepts ('~ 1') are not supported: latentsem fits covariance structures only", index)
    _check_name(stmt, name, name_index)
    free, value, label, explicit = True, None, "", False
    offset = index
    if len(parts) > 2:
        raise stmt.error("Give one modifier per term; to free and label a first indicator write 'NA*x1 + a*x1' "
                         "as lavaan does", index)
    for mod in parts[:-1]:
        mod_text = mod.strip()
        mod_index = offset + (len(mod) - len(mod.lstrip()))
        offset += len(mod) + 1
        if mod_text == "NA":
            free, value, explicit = True, None, True
        elif _NUMBER_RE.match(mod_text):
            free, value, explicit = False, float(mod_text), True
        elif _IDENTIFIER_RE.match(mod_text):
            label = mod_text
        else:
            raise stmt.error(f"Modifier {mod_text!r} is not supported; use a number (fixed), NA (free) or a label", mod_index)
    return name, free, value, label, explicit


def _find_operator(stmt):
    match = _OPERATOR_RE.search(stmt.text)
    if match is None:
        raise stmt.error("No operator in this statement; use =~, ~ or ~~", 0)
    op = match.group(0)
    if op in UNSUPPORTED_OPERATORS:
        raise stmt.error(f"Operator '{op}' is not supported by latentsem: {UNSUPPORTED_OPERATORS[op]}; "
                         "only =~, ~ and ~~ can be fitted", match.start())
    if op == "=":
        raise stmt.error("Unknown operator '='; did you mean '=~'?", match.start())
    later = _OPERATOR_RE.search(stmt.text, match.end())
    if later is not None:
        raise stmt.error(f"A second operator '{later.group(0)}' in one statement; put each statement on its own line "
                         "or separate them with ';'", later.start())
    return op, match.start(), match.end()


def _statement_rows(stmt):
    _check_no_dangling_plus(stmt)
    op, at, after = _find_operator(stmt)
    if not stmt.text[:at].strip():
        raise stmt.error(f"Nothing on the left of '{op}'", at)
    if not stmt.text[after:].strip():
        raise stmt.error(f"Nothing on the right of '{op}'", at)
    lhs_names = []
    for term, index in _split_terms(stmt, 0, at):
        if "*" in term:
            raise stmt.error("Modifiers belong on the right-hand side of an operator", index)
        _check_name(stmt, term, index)
        lhs_names.append(term)
    if op == "=~" and len(lhs_names) > 1:
        raise stmt.error("Define one latent variable per '=~' statement", 0)
    rows = []
    for term, index in _split_terms(stmt, after, len(stmt.text)):
        name, free, value, label, explicit = _parse_term(stmt, term, index)
        for lhs in lhs_names:
            rows.append((Parameter(lhs, op, name, free, value, label), index, explicit))
    return rows


def parse_lavaan(text) -> ParameterTable:
    """Parse lavaan model syntax into a :class:`ParameterTable`.

    Parameters
    ----------
    text : str
        lavaan syntax with ``=~``, ``~`` and ``~~``; modifiers ``1*x``
        (fixed), ``NA*x`` (free), ``a*x`` (label; shared labels are equality
        constraints); comments after ``#`` or ``!``; ``;`` between
        statements; a line without an operator continues the statement
        before it (lavaan's rule), so a right-hand side may end with ``+``
        and go on on the next line.

    Returns
    -------
    ParameterTable
        The user's rows, with lavaan's ``auto.fix.first`` applied: the first
        indicator of each latent is fixed at 1 unless given a value or NA.

    Raises
    ------
    ModelSyntaxError
        With line, column and a caret (``exc.caret()``) for unsupported
        operators (``:=``, ``==``, ``<``, ``>``, ``<~``, ``|``, ``~*~``,
        ``%``), intercepts, bad names, empty terms and duplicate parameters.
    """
    if not isinstance(text, str):
        raise ModelSyntaxError(f"lavaan syntax must be text; got {type(text).__name__}")
    rows, seen, valued = [], {}, set()
    for number, stmt in enumerate(_statements(text)):
        for row, index, has_value in _statement_rows(stmt):
            key = row.key()
            if key in seen and seen[key][1] == number:
                # lavaan merges a term repeated in one statement: 'F =~ NA*x1 + a*x1' frees and labels x1.
                position = seen[key][0]
                rows[position] = _merge_modifiers(stmt, rows[position], row, key in valued, has_value, index)
            elif key in seen:
                raise stmt.error(f"Parameter '{row.lhs} {row.op} {row.rhs}' is specified twice; keep one", index)
            else:
                seen[key] = (len(rows), number)
                rows.append(row)
            if has_value:
                valued.add(key)
    if not rows:
        raise ModelSyntaxError("The model syntax contains no statements; write e.g. 'F =~ x1 + x2 + x3'")
    return check_table(_fix_first_indicators(ParameterTable(rows), valued))


def _merge_modifiers(stmt, first, again, first_has_value, has_value, index):
    if has_value and first_has_value:
        raise stmt.error(f"'{again.rhs}' is given two values (or NA) in one statement; keep one", index)
    if again.label and first.label and again.label != first.label:
        raise stmt.error(f"'{again.rhs}' is given two labels ({first.label}, {again.label}); keep one", index)
    return replace(first, free=again.free if has_value else first.free,
                   value=again.value if has_value else first.value, label=again.label or first.label)


def _fix_first_indicators(table, valued):
    """lavaan ``auto.fix.first``: the first loading of each latent is fixed at 1 unless given a value or NA.

    A label alone does not free it (lavaan 0.6-14: ``F =~ a*x1`` is fixed at 1, labelled a).
    """
    done, rows = set(), []
    for r in table:
        if r.op == "=~" and r.lhs not in done:
            done.add(r.lhs)
            if r.key() not in valued:
                r = replace(r, free=False, value=1.0)
        rows.append(r)
    return ParameterTable(rows)


def check_table(table) -> ParameterTable:
    """Checks that do not depend on data: known operators, and no latent defined by itself."""
    for r in table:
        if r.op not in SUPPORTED_OPERATORS:
            raise ModelSyntaxError(f"Operator '{r.op}' in row '{r.lhs} {r.op} {r.rhs}' is not supported; use =~, ~ or ~~")
        if r.op != "~~" and r.lhs == r.rhs:
            raise ModelSyntaxError(f"'{r.lhs} {r.op} {r.rhs}' relates a variable to itself; remove it")
        if not r.free and r.value is None and not r.exo:
            raise ModelSyntaxError(f"Fixed parameter '{r.lhs} {r.op} {r.rhs}' has no value")
    return table


# =========================================================== lavaan defaults
def dependent_names(table) -> list[str]:
    """Variables on the left of some ``~`` (regressed on something)."""
    return list(dict.fromkeys(r.lhs for r in table if r.op == "~"))


def observed_exogenous(table) -> list[str]:
    """Observed predictors that are never dependent nor indicators (lavaan ``ov.x``, held by fixed.x)."""
    observed = set(table.observed)
    dependent = set(dependent_names(table)) | {r.rhs for r in table if r.op == "=~"}
    predictors = [r.rhs for r in table if r.op == "~"]
    return [n for n in dict.fromkeys(predictors) if n in observed and n not in dependent]


def exogenous_latents(table) -> list[str]:
    """Latents neither regressed nor indicators of another latent (lavaan ``lv.x``)."""
    dependent = set(dependent_names(table)) | {r.rhs for r in table if r.op == "=~"}
    return [n for n in table.latent if n not in dependent]


def pure_dependents(table) -> list[str]:
    """Variables on the left of some ``~`` and on the right of none (lavaan's ``auto.cov.y`` set)."""
    predictors = {r.rhs for r in table if r.op == "~"}
    indicators = {r.rhs for r in table if r.op == "=~"}
    return [n for n in dependent_names(table) if n not in predictors and n not in indicators]


def complete_table(table, latent_covariances="free") -> ParameterTable:
    """Add the parameters lavaan adds, so that every parameter is explicit.

    Parameters
    ----------
    table : ParameterTable
        The user's table (from :func:`parse_lavaan` or :func:`structure_to_table`).
    latent_covariances : {"free", "dag"}
        ``"free"``: lavaan ``sem()`` defaults (``auto.cov.lv.x=TRUE``,
        ``auto.cov.y=TRUE``). ``"dag"``: ``orthogonal=TRUE`` and
        ``auto.cov.y=FALSE``: only covariances in the table are free.

    Returns
    -------
    ParameterTable
        User rows, then free variances of every variable that is not an
        observed exogenous predictor (``auto.var``), the default covariances,
        and ``exo`` rows for the observed exogenous block (``fixed.x=TRUE``).
    """
    _check_choice(latent_covariances)
    rows = list(table)
    have = {r.key() for r in rows}

    def add(lhs, rhs, **kw):
        row = Parameter(lhs, "~~", rhs, user=False, **kw)
        if row.key() not in have:
            have.add(row.key())
            rows.append(row)

    exo = observed_exogenous(table)
    for name in table.observed + table.latent:
        if name not in exo:
            add(name, name)
    if latent_covariances == "free":
        for a, b in combinations(exogenous_latents(table), 2):
            add(a, b)
        for a, b in combinations(pure_dependents(table), 2):
            add(a, b)
    for a, b in [(x, x) for x in exo] + list(combinations(exo, 2)):
        add(a, b, free=False, exo=True)
    return ParameterTable(rows)


def _check_choice(latent_covariances):
    if latent_covariances not in LATENT_COVARIANCES:
        raise LatentsemError(f"The 'latent_covariances' parameter must be one of {list(LATENT_COVARIANCES)}. "
                         f"Got {latent_covariances!r} instead.")


# ===================================================== structures and tables
def structure_to_table(structure, latent_covariances="dag") -> ParameterTable:
    """The lavaan parameter table of a :class:`~latentsem.model.Structure`.

    Undirected latent edges are oriented by ``Structure.to_dag()`` (every
    member of the equivalence class has the same likelihood). Each latent is
    scaled by a marker: its first observed child (or, without one, its first
    latent child) has loading 1. Latent -> observed edges become ``=~`` rows,
    latent -> latent edges ``~`` rows (``=~`` for a latent without observed
    indicators), covariance edges free ``~~`` rows, observed variables
    without any edge a free variance. Under ``"dag"`` every pair of
    non-adjacent latents gets ``A ~~ 0*B``, exogenous and endogenous alike.
    """
    _check_choice(latent_covariances)
    dag = structure.to_dag()
    observed, latent = list(dag.observed), set(dag.latent)
    rows = []
    regressions = []
    for lname in dag.latent:
        items = [c for c in dag.children(lname) if c not in latent]
        items.sort(key=observed.index)
        effects = [c for c in dag.children(lname) if c in latent]
        if not items and not effects:
            raise StructureError(f"Latent {lname} has no children (no items and no latent effects), so it cannot be "
                                 "identified; remove it or give it indicators.")
        if items:
            rows += [Parameter(lname, "=~", x, free=(k > 0), value=None if k else 1.0) for k, x in enumerate(items)]
            regressions += [Parameter(c, "~", lname) for c in effects]
        else:
            rows += [Parameter(lname, "=~", c, free=(k > 0), value=None if k else 1.0) for k, c in enumerate(effects)]
    rows += sorted(regressions, key=lambda r: (dag.latent.index(r.lhs), dag.latent.index(r.rhs)))
    rows += [Parameter(a, "~~", b) for a, b in dag.covariances()]
    touched = {n for e in dag.edges for n in (e.source, e.target)}
    rows += [Parameter(x, "~~", x) for x in observed if x not in touched]
    if latent_covariances == "dag":
        adjacent = {frozenset((e.source, e.target)) for e in dag.edges}
        rows += [Parameter(a, "~~", b, free=False, value=0.0)
                 for a, b in combinations(dag.latent, 2) if frozenset((a, b)) not in adjacent]
    return ParameterTable(rows)


def oriented_edges(structure) -> list[tuple[str, str]]:
    """The undirected latent edges of ``structure`` as (source, target) in ``to_dag()``."""
    if structure.is_dag:
        return []
    undirected = {frozenset((e.source, e.target)) for e in structure.edges if e.type == "undirected"}
    return [(e.source, e.target) for e in structure.to_dag().edges
            if e.type == "directed" and frozenset((e.source, e.target)) in undirected]


def table_to_structure(table) -> Structure:
    """The :class:`~latentsem.model.Structure` a parameter table describes.

    Raises
    ------
    StructureError
        When the table holds something a structure cannot: regressions
        involving observed variables, fixed values other than the marker 1 on
        a first indicator or ``~~ 0*`` between latents, fixed variances, or
        shared labels. Such a table can still be fitted directly.
    """
    latent = table.latent
    observed = [n for n in table.observed]
    edges, first = [], set()
    labels = [r.label for r in table if r.label]
    shared = sorted({lab for lab in labels if labels.count(lab) > 1})
    if shared:
        raise StructureError(f"Labels {shared} constrain parameters to be equal, which a structure cannot express; fit the syntax directly.")
    for r in table:
        if r.op == "=~":
            marker = r.lhs not in first
            first.add(r.lhs)
            if not r.free and not (marker and r.value == 1.0):
                raise StructureError(f"'{r.lhs} =~ {_number(r.value)}*{r.rhs}' fixes a loading, which a structure cannot express; fit the syntax directly.")
            edges.append(Edge(r.lhs, r.rhs, "directed"))
        elif r.op == "~":
            if r.lhs not in latent or r.rhs not in latent:
                raise StructureError(f"'{r.lhs} ~ {r.rhs}' is a regression involving an observed variable, which a structure cannot express; fit the syntax directly.")
            edges.append(Edge(r.rhs, r.lhs, "directed"))
        elif r.lhs == r.rhs:
            if not r.free and not r.exo:
                raise StructureError(f"'{r.lhs} ~~ {_number(r.value)}*{r.rhs}' fixes a variance, which a structure cannot express; fit the syntax directly.")
        elif r.free:
            edges.append(Edge(r.lhs, r.rhs, "covariance"))
        elif not (r.value == 0.0 and r.lhs in latent and r.rhs in latent):
            raise StructureError(f"'{r.lhs} ~~ {_number(r.value)}*{r.rhs}' fixes a covariance, which a structure cannot express; fit the syntax directly.")
    return Structure(observed, latent, edges)


# ================================================================== exports
def _grouped(rows) -> list[tuple[str, str, list]]:
    groups = {}
    for r in rows:
        groups.setdefault((r.lhs, r.op), []).append(r)
    return [(lhs, op, members) for (lhs, op), members in groups.items()]


def _lines(rows, flavour):
    lines = []
    for lhs, op, members in _grouped(rows):
        terms = []
        for k, r in enumerate(members):
            # A free first indicator needs NA* in lavaan (auto.fix.first) but never in semopy (NA is a label there).
            terms.append(r.term(flavour, force_free=(op == "=~" and k == 0)))
        lines.append(f"{lhs} {op} {' + '.join(terms)}")
    return lines


def to_lavaan(model, latent_covariances="dag") -> str:
    """lavaan syntax for a Structure or a ParameterTable, one statement per line.

    For a Structure: the first indicator's marker is written ``1*``; undirected
    latent edges are written as the member of the class ``to_dag()`` chooses,
    with a comment naming them; under ``"dag"`` every non-adjacent latent
    pair gets ``A ~~ 0*B`` so that lavaan's ``sem()`` fits DAG semantics
    without further options. Under ``"free"`` lavaan's defaults apply.
    """
    header = []
    if isinstance(model, Structure):
        _check_choice(latent_covariances)
        oriented = oriented_edges(model)
        if oriented:
            undirected = {frozenset((e.source, e.target)): (e.source, e.target)
                          for e in model.edges if e.type == "undirected"}
            written = ", ".join("{} - {} written as {} -> {}".format(*undirected[frozenset((a, b))], a, b)
                                for a, b in oriented)
            header.append(f"# Undirected latent edges oriented arbitrarily (one DAG of the equivalence class; "
                          f"every member fits the same): {written}")
        header.append(f"# latent covariances: {latent_covariances}"
                      + (" (latents without an edge are independent)" if latent_covariances == "dag" else
                         " (lavaan sem() defaults)"))
        table = structure_to_table(model, latent_covariances)
    else:
        table = model
    user = [r for r in table if r.user and not r.exo]
    return "\n".join(header + _lines(user, "lavaan")) + "\n"


def lavaan_for_fit(full: ParameterTable) -> str:
    """lavaan syntax that makes lavaan's ``sem()`` fit exactly the completed table ``full``.

    The user's rows, every added covariance written out, and ``A ~~ 0*B`` for
    each pair lavaan would free by default (``auto.cov.lv.x``, ``auto.cov.y``)
    that ``full`` leaves out, so the text carries its semantics with it.
    """
    rows = [r for r in full if not r.exo and (r.user or (r.op == "~~" and r.lhs != r.rhs))]
    have = {r.key() for r in full}
    defaults = list(combinations(exogenous_latents(full), 2)) + list(combinations(pure_dependents(full), 2))
    rows += [Parameter(a, "~~", b, free=False, value=0.0) for a, b in defaults
             if Parameter(a, "~~", b).key() not in have]
    return "\n".join(_lines(rows, "lavaan")) + "\n"


def to_semopy(model, latent_covariances="dag") -> str:
    """semopy syntax with every covariance written out.

    semopy differs from lavaan (REFERENCE section 4): it frees covariances of
    exogenous latents but not of endogenous ones, cannot read ``;`` or
    continued lines, frees the marker when a later loading is fixed, and
    reads ``NA*x`` as a label. So the completed table is written: markers
    explicit, every free or zero covariance on its own line, no ``NA*``.
    """
    if isinstance(model, Structure):
        table = structure_to_table(model, latent_covariances)
    else:
        table = model
        latent_covariances = "free" if latent_covariances is None else latent_covariances
    full = complete_table(table, latent_covariances)
    rows = [r for r in full if not r.exo and not (r.op == "~~" and r.lhs == r.rhs and r.free and not r.label)]
    have = {r.key() for r in full}
    # semopy frees the covariances of exogenous latents unless told otherwise: write the zeros.
    rows += [Parameter(a, "~~", b, free=False, value=0.0) for a, b in combinations(exogenous_latents(full), 2)
             if Parameter(a, "~~", b).key() not in have]
    return "\n".join(_lines(rows, "semopy")) + "\n"


def to_dot(model, name="latentsem") -> str:
    """Graphviz DOT source: latents as ellipses, items as boxes.

    Directed edges are arrows, undirected latent edges plain lines, residual
    covariances dashed two-headed arrows.
    """
    structure = table_to_structure(model) if isinstance(model, ParameterTable) else model
    quote = lambda s: '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'  # noqa: E731
    lines = [f"digraph {quote(name)} {{", "  rankdir=TB;"]
    lines += [f"  {quote(n)} [shape=ellipse];" for n in structure.latent]
    lines += [f"  {quote(n)} [shape=box];" for n in structure.observed]
    style = {"directed": "", "undirected": " [dir=none]", "covariance": " [dir=both, style=dashed]"}
    lines += [f"  {quote(e.source)} -> {quote(e.target)}{style[e.type]};" for e in structure.edges]
    return "\n".join(lines + ["}"]) + "\n"


def as_table(model, latent_covariances="dag") -> ParameterTable:
    """A Structure, a ParameterTable or lavaan text as a ParameterTable (user rows)."""
    if isinstance(model, ParameterTable):
        return check_table(model)
    if isinstance(model, Structure):
        return structure_to_table(model, latent_covariances)
    if isinstance(model, str):
        return parse_lavaan(model)
    raise TypeError(f"A model must be a Structure, a ParameterTable or lavaan syntax text; got {type(model).__name__}.")


def semopy_description(table: ParameterTable, names: Iterable[str]) -> str:
    """semopy syntax for a *completed* table with every free parameter named.

    ``names`` gives one semopy parameter name per row (ignored for fixed and
    ``exo`` rows): the fitter reads the estimates back by these names.
    """
    lines = []
    for r, name in zip(table, names):
        if r.exo:
            continue  # semopy holds observed exogenous (co)variances at sample values itself
        if r.free:
            term = f"{name}*{r.rhs}"
        else:
            term = f"{_number(r.value)}*{r.rhs}"
        lines.append(f"{r.lhs} {r.op} {term}")
    return "\n".join(lines) + "\n"


def read_model(path):
    """Read a model file: ``.json`` -> :class:`~latentsem.model.Structure`, anything else -> lavaan syntax text.

    The lavaan text is parsed once here so that a syntax error names the file.
    """
    from pathlib import Path

    path = Path(path)
    if path.suffix.lower() == ".json":
        return Structure.from_json(path)
    if not path.is_file():
        raise StructureError(f"Model file {str(path)!r} does not exist; check the path.")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise StructureError(f"Model file {str(path)!r} cannot be read as text ({exc}); give a .lav/.txt lavaan file or a .json structure.") from None
    try:
        parse_lavaan(text)
    except ModelSyntaxError as exc:
        message = str(exc).rsplit(" at line ", 1)[0] if exc.line is not None else str(exc)
        raise ModelSyntaxError(f"{path}: {message}", exc.line, exc.column, exc.source_line) from None
    return text
