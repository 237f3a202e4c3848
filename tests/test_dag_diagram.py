"""Graphviz drawings of a DAG and of an estimate against the truth: colours, labels, file formats."""

import re
import shutil

import numpy as np
import pytest

from latentsem.exceptions import LatentsemError
from latentsem.report.dag_diagram import COLOURS, comparison_source, dag_source, render

NAMES = ["a", "b", "c", "d"]


def matrix(edges, d=4):
    W = np.zeros((d, d))
    for i, j, w in edges:
        W[i, j] = w
    return W


def edge_colour(source_text, tail, head):
    """Colour of the edge ``e<tail> -> e<head>`` in the estimated panel of the DOT text."""
    match = re.search(rf"\be{tail} -> e{head} \[([^\]]*)\]", source_text)
    assert match, f"no edge e{tail} -> e{head}"
    return re.search(r'color="([^"]+)"', match.group(1)).group(1), match.group(1)


def test_comparison_colours_each_kind_of_edge():
    truth = matrix([(0, 1, 1.0), (1, 2, 1.0), (2, 3, 1.0)])
    estimate = matrix([(0, 1, 0.9), (2, 1, -0.8), (0, 3, 0.5)])
    text = comparison_source(truth, estimate, NAMES).source
    assert edge_colour(text, 0, 1)[0] == COLOURS["true_positive"]
    assert edge_colour(text, 2, 1)[0] == COLOURS["reversed"]
    assert edge_colour(text, 0, 3)[0] == COLOURS["false_positive"]
    colour, attrs = edge_colour(text, 2, 3)            # missed true edge, drawn dashed in the estimate panel
    assert colour == COLOURS["false_negative"] and "dashed" in attrs
    assert "1 correct, 1 reversed, 1 extra, 1 missed" in text
    assert text.count(" -> t") == 3                     # the truth panel holds exactly the true edges


def test_dag_source_labels_weights_and_escapes_names():
    text = dag_source(matrix([(0, 1, 1.234), (3, 2, -0.5)]), ["<b>", "b", "c", "d"]).source
    assert "n0 -> n1 [label=1.23]" in text and "n3 -> n2 [label=-0.50]" in text
    assert 'n0 [label="<b>"' in text                   # a quoted string, not an HTML-like <...> label


def test_shape_mismatch_and_bad_suffix(tmp_path):
    with pytest.raises(LatentsemError, match="4 x 4 matrix"):
        dag_source(np.zeros((3, 3)), NAMES)
    with pytest.raises(LatentsemError, match=r"\.svg or \.png"):
        render(dag_source(np.zeros((4, 4)), NAMES), tmp_path / "x.pdf")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_render_svg_and_png(tmp_path):
    source = comparison_source(matrix([(0, 1, 1.0)]), matrix([(1, 0, 1.0)]), NAMES)
    svg = render(source, tmp_path / "c.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and COLOURS["reversed"] in svg
    assert render(source, tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
