"""lavaan syntax: parsing, lavaan's defaults, Structure conversion and exports."""

import re
import shutil
import subprocess

import pytest

from latentsem.exceptions import ModelSyntaxError, StructureError
from latentsem.model import Edge, Structure, simple_structure
from latentsem.syntax import (Parameter, ParameterTable, complete_table, lavaan_for_fit, parse_lavaan, read_model,
                              structure_to_table, table_to_structure, to_dot, to_lavaan, to_semopy)


def rows(table):
    return [(r.lhs, r.op, r.rhs, r.free, r.value, r.label) for r in table]


# ------------------------------------------------------------------- parsing
def test_parse_operators_modifiers_and_marker():
    table = parse_lavaan("F =~ x1 + 0.5*x2 + a*x3\nG =~ NA*y1 + y2\nG ~ F\nx1 ~~ y1\nG ~~ 1*G")
    assert rows(table) == [
        ("F", "=~", "x1", False, 1.0, ""),      # auto.fix.first: marker fixed at 1
        ("F", "=~", "x2", False, 0.5, ""),
        ("F", "=~", "x3", True, None, "a"),
        ("G", "=~", "y1", True, None, ""),       # NA* frees the first indicator
        ("G", "=~", "y2", True, None, ""),
        ("G", "~", "F", True, None, ""),
        ("x1", "~~", "y1", True, None, ""),
        ("G", "~~", "G", False, 1.0, ""),
    ]
    assert table.latent == ["F", "G"]
    assert table.observed == ["x1", "x2", "x3", "y1", "y2"]


def test_labelled_first_indicator_stays_the_fixed_marker_as_in_lavaan():
    # lavaan 0.6-14: lavaanify("F =~ a*x1 + x2 + x3", auto.fix.first=TRUE) gives x1 free = 0, ustart = 1, label "a".
    table = parse_lavaan("F =~ a*x1 + x2")
    assert rows(table)[0] == ("F", "=~", "x1", False, 1.0, "a")
    assert to_lavaan(table) == "F =~ a*x1 + x2\n"
    assert parse_lavaan(to_lavaan(table)) == table


def test_repeated_term_in_one_statement_merges_modifiers_as_lavaan():
    # lavaan 0.6-14: lavaanify("F =~ NA*x1 + a*x1 + x2 + x3") gives x1 free with label "a".
    table = parse_lavaan("F =~ NA*x1 + a*x1 + x2")
    assert rows(table)[:2] == [("F", "=~", "x1", True, None, "a"), ("F", "=~", "x2", True, None, "")]
    assert to_lavaan(table) == "F =~ NA*x1 + a*x1 + x2\n"
    assert parse_lavaan(to_lavaan(table)) == table


@pytest.mark.parametrize("text, message", [
    ("F =~ 0.5*x1 + NA*x1", "'x1' is given two values (or NA) in one statement"),
    ("F =~ a*x1 + b*x1", "'x1' is given two labels (a, b)"),
    ("F =~ NA*a*x1", "Give one modifier per term"),
])
def test_conflicting_modifiers(text, message):
    with pytest.raises(ModelSyntaxError, match=re.escape(message)):
        parse_lavaan(text)


def test_comments_semicolons_and_continuation_lines():
    text = ("# a comment line\n"
            "F =~ x1 + x2 +   # ends with +\n"
            "     x3          ! lavaan's other comment mark\n"
            "G =~ y1 + y2\n"
            "   + y3; H =~ z1 + z2 + z3\n"
            "\n"
            "G ~ F ; H ~ F + G\n")
    table = parse_lavaan(text)
    assert table.indicators("F") == ["x1", "x2", "x3"]
    assert table.indicators("G") == ["y1", "y2", "y3"]
    assert table.indicators("H") == ["z1", "z2", "z3"]
    assert [(r.lhs, r.rhs) for r in table if r.op == "~"] == [("G", "F"), ("H", "F"), ("H", "G")]


def test_several_left_hand_sides_expand():
    table = parse_lavaan("F =~ x1 + x2 + x3\ny1 + y2 ~ F")
    assert [(r.lhs, r.rhs) for r in table if r.op == "~"] == [("y1", "F"), ("y2", "F")]


@pytest.mark.parametrize("op", [":=", "==", "<", ">", "<~", "|", "~*~", "%"])
def test_unsupported_operator_names_it_with_line_column_and_caret(op):
    text = f"F =~ x1 + x2 + x3\n  a {op} b\n"
    with pytest.raises(ModelSyntaxError) as info:
        parse_lavaan(text)
    exc = info.value
    assert f"Operator '{op}' is not supported" in str(exc)
    assert (exc.line, exc.column) == (2, 5)
    assert str(exc).endswith("at line 2, pos 5")
    assert exc.caret() == f"  a {op} b\n    ^"


@pytest.mark.parametrize("text, message, line, column", [
    ("F =~ x1 + x2 +\nG =~ y1 + y2", "The statement ends with '+'", 1, 14),
    ("F =~ x1 + + x2", "Empty term", 1, 11),
    ("F =~ x1 + x2\nF =~ x1", "Parameter 'F =~ x1' is specified twice", 2, 6),
    ("a ~~ b\nb ~~ a", "Parameter 'b ~~ a' is specified twice", 2, 6),
    ("y ~ 1", "Intercepts ('~ 1') are not supported", 1, 5),
    ("F =~ x1 + start(1)*x2", "Modifier 'start(1)' is not supported", 1, 11),
    ("F =~ x1 + 2x", "'2x' is not a valid variable name", 1, 11),
    ("x1 + x2", "No operator in this statement", 1, 1),
    ("F = x1", "Unknown operator '='", 1, 3),
    ("F =~ x1 ~ x2", "A second operator '~'", 1, 9),
])
def test_syntax_errors_point_at_the_problem(text, message, line, column):
    with pytest.raises(ModelSyntaxError, match=re.escape(message)) as info:
        parse_lavaan(text)
    assert (info.value.line, info.value.column) == (line, column)


def test_empty_model_is_an_error():
    with pytest.raises(ModelSyntaxError, match="contains no statements"):
        parse_lavaan("# only a comment\n\n")


# ---------------------------------------------------------- lavaan defaults
# Expected sets measured with lavaan 0.6-14:
#   lavaanify(m, auto=TRUE, model.type="sem", auto.fix.first=TRUE, auto.var=TRUE,
#             auto.cov.lv.x=TRUE, auto.cov.y=TRUE, meanstructure=FALSE)
LAVAAN_DEFAULTS_MODEL = """A =~ x1 + x2 + x3
B =~ x4 + x5 + x6
C =~ x7 + x8 + x9
D =~ y1 + y2
E =~ y3 + y4
G =~ y5 + y6
C ~ A
D ~ A + B
E ~ D
G ~ D
y7 ~ A
y8 ~ A
z ~ y7"""
LAVAAN_FREE_COVARIANCES = {("A", "B"), ("C", "E"), ("C", "G"), ("C", "y8"), ("C", "z"), ("E", "G"), ("E", "y8"),
                           ("E", "z"), ("G", "y8"), ("G", "z"), ("y8", "z")}


def covariance_pairs(table):
    return {(r.lhs, r.rhs) for r in table if r.op == "~~" and r.lhs != r.rhs and r.free}


def test_free_semantics_adds_exactly_lavaans_default_covariances():
    full = complete_table(parse_lavaan(LAVAAN_DEFAULTS_MODEL), "free")
    pairs = {frozenset(p) for p in covariance_pairs(full)}
    assert pairs == {frozenset(p) for p in LAVAAN_FREE_COVARIANCES}
    variances = {r.lhs for r in full if r.op == "~~" and r.lhs == r.rhs}
    assert variances == set(full.observed) | set(full.latent)


def test_dag_semantics_adds_no_covariance():
    full = complete_table(parse_lavaan(LAVAAN_DEFAULTS_MODEL), "dag")
    assert covariance_pairs(full) == set()


def test_fixed_x_block_is_held_at_sample_values():
    # lavaan (fixed.x=TRUE): x7, x8 exogenous observed: var/cov rows free = 0, exo = 1.
    full = complete_table(parse_lavaan("A =~ x1 + x2\ny ~ x7 + x8\nz ~ x7"), "free")
    exo = {(r.lhs, r.rhs) for r in full if r.exo}
    assert exo == {("x7", "x7"), ("x8", "x8"), ("x7", "x8")}
    assert all(not r.free for r in full if r.exo)
    assert {frozenset((r.lhs, r.rhs)) for r in full if r.op == "~~" and r.free and r.lhs != r.rhs} == {frozenset(("y", "z"))}


def test_bad_latent_covariances_value():
    with pytest.raises(ValueError, match="'latent_covariances' parameter must be one of"):
        complete_table(parse_lavaan("F =~ a + b + c"), "oblique")


# ----------------------------------------------------- structures <-> tables
def chain_structure():
    return simple_structure({"F1": ["a", "b", "c"], "F2": ["d", "e", "f"], "F3": ["g", "h", "i"], "F4": ["j", "k"]},
                            [("F1", "F2", "undirected"), ("F2", "F3", "directed")])


def test_structure_to_lavaan_dag_text():
    text = to_lavaan(chain_structure(), "dag")
    assert text == (
        "# Undirected latent edges oriented arbitrarily (one DAG of the equivalence class; every member fits the same): "
        "F1 - F2 written as F2 -> F1\n"
        "# latent covariances: dag (latents without an edge are independent)\n"
        "F1 =~ 1*a + b + c\n"
        "F2 =~ 1*d + e + f\n"
        "F3 =~ 1*g + h + i\n"
        "F4 =~ 1*j + k\n"
        "F1 ~ F2\n"
        "F3 ~ F2\n"
        "F1 ~~ 0*F3 + 0*F4\n"
        "F2 ~~ 0*F4\n"
        "F3 ~~ 0*F4\n")


def test_structure_to_lavaan_free_leaves_lavaan_defaults():
    text = to_lavaan(chain_structure(), "free")
    assert "0*" not in text and "~~" not in text
    assert "# latent covariances: free" in text


def test_every_nonadjacent_latent_pair_is_zero_under_dag():
    table = structure_to_table(chain_structure(), "dag")
    zero = {frozenset((r.lhs, r.rhs)) for r in table if r.op == "~~" and not r.free and r.value == 0.0}
    assert zero == {frozenset(p) for p in [("F1", "F3"), ("F1", "F4"), ("F2", "F4"), ("F3", "F4")]}


def test_structure_round_trip_through_table_and_lavaan_text():
    structure = chain_structure().to_dag()
    back = table_to_structure(parse_lavaan(to_lavaan(structure)))
    assert {e.key() for e in back.edges} == {e.key() for e in structure.edges}
    assert set(back.observed) == set(structure.observed) and set(back.latent) == set(structure.latent)


def test_latent_without_items_is_scaled_by_its_first_latent_child():
    s = Structure(["a", "b", "c", "d", "e", "f"], ["H", "F1", "F2"],
                  [Edge("F1", x) for x in "abc"] + [Edge("F2", x) for x in "def"] + [Edge("H", "F1"), Edge("H", "F2")])
    text = to_lavaan(s, "free")
    assert "H =~ 1*F1 + F2" in text
    assert {e.key() for e in table_to_structure(parse_lavaan(text)).edges} == {e.key() for e in s.edges}


def test_residual_covariance_and_isolated_item():
    s = Structure(["a", "b", "c", "z"], ["F"], [Edge("F", "a"), Edge("F", "b"), Edge("F", "c"), Edge("a", "b", "covariance")])
    text = to_lavaan(s)
    assert "a ~~ b\n" in text and "z ~~ z\n" in text


def test_latent_without_children_cannot_be_written():
    s = Structure(["a", "b", "c"], ["F", "G"], [Edge("F", x) for x in "abc"])
    with pytest.raises(StructureError, match="Latent G has no children"):
        structure_to_table(s)


@pytest.mark.parametrize("text, message", [
    ("F =~ a + b + c\nc ~ a", "regression involving an observed variable"),
    ("F =~ a + 0.5*b + c", "fixes a loading"),
    ("F =~ a + b + c\nF ~~ 1*F", "fixes a variance"),
    ("F =~ a + b + c\na ~~ 0.3*b", "fixes a covariance"),
    ("F =~ a + x*b + x*c", "Labels \\['x'\\] constrain parameters to be equal"),
])
def test_tables_a_structure_cannot_express(text, message):
    with pytest.raises(StructureError, match=message):
        table_to_structure(parse_lavaan(text))


def test_table_round_trips_through_lavaan_text():
    text = "F =~ x1 + 0.5*x2 + a*x3\nG =~ NA*y1 + a*y2\nG ~ F\nx1 ~~ y1\nG ~~ 1*G\n"
    table = parse_lavaan(text)
    assert to_lavaan(table) == text.replace("F =~ x1", "F =~ 1*x1")  # the marker is written out
    assert parse_lavaan(to_lavaan(table)) == table


def test_lavaan_for_fit_writes_zeros_for_lavaans_defaults_under_dag():
    full = complete_table(parse_lavaan("A =~ a1 + a2\nB =~ b1 + b2\nC =~ c1 + c2\nD =~ d1 + d2\nC ~ A\nD ~ B"), "dag")
    text = lavaan_for_fit(full)
    assert "A ~~ 0*B\n" in text and "C ~~ 0*D\n" in text
    free = complete_table(parse_lavaan(text), "free")
    assert covariance_pairs(free) == set()


# ------------------------------------------------------------------- semopy
def test_semopy_export_avoids_semopys_traps():
    table = parse_lavaan("F =~ NA*x1 + x2 + 0.5*x3\nF ~~ 1*F\nG =~ y1 + y2 + y3\nH =~ z1 + z2 + z3\nH ~ G")
    text = to_semopy(table, "dag")
    assert ";" not in text and "NA*" not in text
    assert "F =~ free_F_x1*x1 + x2 + 0.5*x3" in text      # the free marker is named, not left to semopy
    assert "G =~ 1*y1 + y2 + y3" in text                     # the marker is explicit
    assert "F ~~ 1*F + 0*G" in text                          # exogenous latents: semopy would free them


def test_semopy_export_parses_in_semopy():
    semopy = pytest.importorskip("semopy")
    model = semopy.Model(to_semopy(chain_structure(), "free"))
    assert set(model.vars["latent"]) == {"F1", "F2", "F3", "F4"}


# ---------------------------------------------------------------------- DOT
def test_dot_shapes_and_edge_styles():
    s = chain_structure()
    s = s.replace(edges=list(s.edges) + [Edge("a", "b", "covariance")])
    dot = to_dot(s)
    assert '"F1" [shape=ellipse];' in dot and '"a" [shape=box];' in dot
    assert '"F1" -> "F2" [dir=none];' in dot
    assert '"F2" -> "F3";' in dot
    assert '"a" -> "b" [dir=both, style=dashed];' in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_dot_source_renders_with_graphviz():
    done = subprocess.run(["dot", "-Tsvg"], input=to_dot(chain_structure()), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "<svg" in done.stdout


# ------------------------------------------------------------------ reading
def test_read_model_json_and_lavaan(tmp_path):
    structure = chain_structure()
    structure.to_json(tmp_path / "m.json")
    assert read_model(tmp_path / "m.json") == structure
    (tmp_path / "m.lav").write_text("F =~ a + b + c\n")
    assert read_model(tmp_path / "m.lav") == "F =~ a + b + c\n"


def test_read_model_names_the_file_on_syntax_errors(tmp_path):
    path = tmp_path / "bad.lav"
    path.write_text("F =~ a + b\nF := 2\n")
    with pytest.raises(ModelSyntaxError, match=r"bad.lav: Operator ':=' is not supported.* at line 2, pos 3$"):
        read_model(path)


def test_read_model_missing_file(tmp_path):
    with pytest.raises(StructureError, match="does not exist"):
        read_model(tmp_path / "none.lav")


def test_parameter_table_frame_round_trip():
    table = parse_lavaan("F =~ x1 + a*x2 + 0.5*x3\nx1 ~~ x2")
    assert ParameterTable.from_frame(table.to_frame()) == table
    assert Parameter("b", "~~", "a").key() == Parameter("a", "~~", "b").key()
