"""Tests of latentsem.report: path diagrams, rendering, purity and build_report on real data.

The real-data report uses Holzinger & Swineford (1939) (the `holzinger1939` data set, N = 301)
with lavaan's three-factor CFA; its chi-square under lavaan's defaults (factors correlated) is the
golden value of REFERENCE.md section 3, from lavaan 0.6-14:

    fit <- cfa("visual =~ x1 + x2 + x3; textual =~ x4 + x5 + x6; speed =~ x7 + x8 + x9",
               data = HolzingerSwineford1939)
    fitMeasures(fit, "chisq")   # 85.3055
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from latentsem.exceptions import LatentsemError
from latentsem.model import Edge, Structure, simple_structure
from latentsem.report import diagram, render
from latentsem.report.build import (REPORT_FILES, best_models, build_report, check_report_dir, labels_from_prefix,
                                    latent_purity, model_slugs)

REPO = Path(__file__).resolve().parent.parent
THREE_FACTOR = (REPO / "datasets" / "holzinger1939" / "three_factor.lav").read_text()
TWO_FACTOR = "vs =~ x1 + x2 + x3 + x7 + x8 + x9\ntextual =~ x4 + x5 + x6\n"
# Not identified at the estimate: fit_model records a singular-information warning for it.
UNIDENTIFIED = "f =~ x4 + x5 + x6 + x1 + x2\ng =~ x5 + x6\n"
SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def holzinger():
    from latentsem.datasets import dataset_info, find_dataset_file, load_dataset

    if find_dataset_file(dataset_info("holzinger1939")) is None:
        pytest.skip("holzinger1939 data file not found")
    return load_dataset("holzinger1939")


@pytest.fixture(scope="module")
def report(holzinger, tmp_path_factory):
    """One report: the three-factor CFA, a worse two-factor model and a reported reference row."""
    out = tmp_path_factory.mktemp("reports") / "holzinger"
    extra = [{"name": "Reference (reported)", "rmsea": 0.001, "cfi": 0.999, "tli": 0.999, "note": "made-up values"}]
    result = build_report(holzinger, {"three_factor": THREE_FACTOR, "two_factor": TWO_FACTOR}, out_dir=out,
                          latent_covariances="free", title="Holzinger test report", extra_rows=extra)
    return result


class _Rows(HTMLParser):
    """Collects, per comparison-table row (``tr[data-model]``), the classes of its cells by data-key."""

    def __init__(self):
        super().__init__()
        self.rows, self._current = {}, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "data-model" in attrs:
            self._current = self.rows.setdefault(attrs["data-model"], {})
        elif tag == "td" and self._current is not None and "data-key" in attrs:
            self._current[attrs["data-key"]] = set((attrs.get("class") or "").split())

    def handle_endtag(self, tag):
        if tag == "tr":
            self._current = None


def _comparison_cells(html):
    parser = _Rows()
    parser.feed(html)
    return parser.rows


def _inline_svgs(html):
    return re.findall(r"<svg\b.*?</svg>", html, flags=re.S)


def _svg_texts(svg_text):
    root = ET.fromstring(svg_text)
    return [t.text for t in root.iter(f"{SVG_NS}text")]


# ------------------------------------------------------------------ build_report on real data
def test_report_chisq_equals_fit_model_and_lavaan(report, holzinger):
    from latentsem.fit import fit_model

    expected = fit_model(THREE_FACTOR, holzinger, latent_covariances="free").indices["chisq"]
    written = json.loads((report.out_dir / "fit.json").read_text())
    assert written["models"]["three_factor"]["indices"]["chisq"] == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(85.3055, abs=1e-3)  # lavaan 0.6-14 golden value
    html = report.html_path.read_text()
    assert f"{expected:.3f}" in html and "85.306" in html
    md = (report.out_dir / "report.md").read_text()
    assert "| three\\_factor | 21 | 85.306 | 24 |" in md


def test_report_writes_expected_files(report):
    names = sorted(p.name for p in report.out_dir.iterdir())
    assert names == sorted(list(REPORT_FILES) + ["three_factor.svg", "two_factor.svg"])
    assert [p.name for p in report.files][:3] == list(REPORT_FILES)
    for name in ("three_factor.svg", "two_factor.svg"):
        texts = _svg_texts((report.out_dir / name).read_text())
        assert {"x1", "x9"} <= set(texts)
    md = (report.out_dir / "report.md").read_text()
    assert "![Path diagram of three\\_factor](three_factor.svg)" in md
    assert "![Path diagram of two\\_factor](two_factor.svg)" in md


def test_report_marks_best_values_on_the_right_cells(report):
    fitted = {name: fit.indices for name, fit in report.fits.items()}
    cells = _comparison_cells(report.html_path.read_text())
    assert set(cells) == {"three_factor", "two_factor", "Reference (reported)"}
    for key, better in (("rmsea", min), ("srmr", min), ("aic", min), ("bic", min), ("cfi", max), ("tli", max)):
        winner = better(fitted, key=lambda name: fitted[name][key])
        for name in fitted:
            assert ("best" in cells[name][key]) == (name == winner), (key, name)
        assert report.best[key] == [winner]
    assert report.best["rmsea"] == ["three_factor"]  # the true structure fits better than the merged one
    # The reported row has better values than every fitted model but is never marked.
    assert not any("best" in classes for classes in cells["Reference (reported)"].values())
    assert all("best" not in classes for classes in (cells["three_factor"]["chisq"], cells["two_factor"]["chisq"]))
    md_rows = {line.split(" | ")[0]: line for line in (report.out_dir / "report.md").read_text().splitlines()}
    three = fitted["three_factor"]
    assert md_rows["| three\\_factor"].count("**") == 12  # six best values in bold
    assert f"| **{three['rmsea']:.3f}** | [{three['rmsea_ci_lower']:.3f}, {three['rmsea_ci_upper']:.3f}] |" \
        in md_rows["| three\\_factor"]
    assert "**" not in md_rows["| two\\_factor"]


def test_report_labels_reported_rows(report):
    html = report.html_path.read_text()
    row = re.search(r'<tr class="reported" data-model="Reference \(reported\)">.*?</tr>', html, flags=re.S).group(0)
    assert '<span class="tag">reported</span>' in row and "0.001" in row and "made-up values" in row
    fit_json = json.loads((report.out_dir / "fit.json").read_text())
    assert fit_json["reported"] == [{"name": "Reference (reported)", "note": "made-up values",
                                     "rmsea": 0.001, "cfi": 0.999, "tli": 0.999}]
    assert "Reference (reported)" not in fit_json["models"]


def test_report_inline_svgs_are_valid_and_labelled(report):
    html = report.html_path.read_text()
    svgs = _inline_svgs(html)
    assert len(svgs) == 2
    three = report.fits["three_factor"].estimates
    loading = float(three[(three.lhs == "visual") & (three.op == "=~") & (three.rhs == "x1")].std_all.iloc[0])
    texts = _svg_texts(svgs[0])
    assert {"visual", "textual", "speed", "x1", "x9"} <= set(texts)
    assert f"{loading:.2f}" in texts  # the standardized loading labels its arrow
    covariance = float(three[(three.lhs == "visual") & (three.op == "~~") & (three.rhs == "textual")].std_all.iloc[0])
    assert f"{covariance:.2f}" in texts  # "free" latent covariances are drawn as labelled arcs
    ids = [re.findall(r'id="([^"]+)"', svg) for svg in svgs]
    assert not set(ids[0]) & set(ids[1])  # several diagrams inline without duplicate element ids


def test_report_states_settings_and_versions(report):
    html = report.html_path.read_text()
    assert "latent covariances: <strong>free</strong>" in html
    assert "free: lavaan&#39;s sem()/cfa() defaults" in html
    assert "no truncation" in html and "Truncated to 3 dp (paper's Table 3)" in html
    for package in ("latentsem", "numpy", "scipy", "pandas", "semopy", "dot (Graphviz)", "python"):
        assert f"<b>{package}</b>" in html
    table3 = json.loads((report.out_dir / "fit.json").read_text())["models"]["three_factor"]["table3"]
    assert table3 == report.fits["three_factor"].table3()
    assert "no external" not in html and "http://" not in html.replace("http://www.w3.org", "")


def test_report_data_summary_matches_the_data(report, holzinger):
    html = report.html_path.read_text()
    assert "N = 301" in html
    x1 = holzinger.frame["x1"]
    row = re.search(r"<tr><td>x1</td>.*?</tr>", html.split('id="data"')[1], flags=re.S).group(0)
    assert f"{x1.mean():.3f}" in row and f"{x1.std(ddof=1):.3f}" in row


def test_report_escapes_a_model_named_script(holzinger, tmp_path):
    name = "<script>alert(1)</script>"
    result = build_report(holzinger, {name: THREE_FACTOR}, out_dir=tmp_path / "r", latent_covariances="free")
    html = result.html_path.read_text()
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    md = (tmp_path / "r" / "report.md").read_text()
    assert "<script" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert (tmp_path / "r" / "script_alert_1_script.svg").is_file()


def test_report_records_fit_warnings_and_skips_aic_for_other_items(holzinger, tmp_path):
    result = build_report(holzinger, {"three_factor": THREE_FACTOR, "unidentified": UNIDENTIFIED},
                          out_dir=tmp_path / "r", latent_covariances="free")
    warning = result.fits["unidentified"].warnings[0]
    assert "information matrix is singular" in warning
    html = result.html_path.read_text()
    box = re.search(r'id="model-unidentified".*?<div class="warnings">(.*?)</div>', html, flags=re.S).group(1)
    assert warning.replace("'", "&#39;") in box
    assert "aic" not in result.best and "bic" not in result.best  # different items: AIC/BIC not comparable
    assert "not comparable" in html


def test_report_refuses_existing_directory_without_force(holzinger, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "report.html").write_text("precious")
    with pytest.raises(LatentsemError, match=r"already exists and is not empty; pass --force"):
        build_report(holzinger, {"three_factor": THREE_FACTOR}, out_dir=out)
    assert (out / "report.html").read_text() == "precious"
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]


def test_report_force_replaces_only_report_files(holzinger, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "report.html").write_text("old report")
    (out / "notes.txt").write_text("mine")
    build_report(holzinger, {"three_factor": THREE_FACTOR}, out_dir=out, force=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_report_with_discovered_structure_writes_model_json(holzinger, tmp_path):
    discovered = simple_structure({"L1": ["x1", "x2", "x3"], "L2": ["x4", "x5", "x6"], "L3": ["x7", "x8", "x9"]},
                                  [("L1", "L2", "undirected"), ("L2", "L3", "undirected")])
    result = build_report(holzinger, {}, discovered=discovered, out_dir=tmp_path / "r")
    assert Structure.from_json(tmp_path / "r" / "model.json") == discovered
    assert list(result.fits) == ["LGES (discovered)"]
    html = result.html_path.read_text()
    assert "discovered by LGES" in html
    assert "fitted as one DAG of the equivalence class" in html
    # dag semantics: the undirected chain is fitted as one DAG of its class (L1 and L3 independent).
    assert result.fits["LGES (discovered)"].indices["df"] == 25


def test_report_rejects_bad_input_before_writing(holzinger, tmp_path):
    out = tmp_path / "r"
    with pytest.raises(LatentsemError, match="No model to report on"):
        build_report(holzinger, {}, out_dir=out)
    with pytest.raises(LatentsemError, match="'latent_covariances' parameter of build_report"):
        build_report(holzinger, {"m": THREE_FACTOR}, out_dir=out, latent_covariances="oblique")
    with pytest.raises(LatentsemError, match=r"extra_rows\[0\] .* unknown keys \['gfi'\]"):
        build_report(holzinger, {"m": THREE_FACTOR}, out_dir=out, extra_rows=[{"name": "x", "gfi": 0.9}])
    with pytest.raises(LatentsemError, match="not a column of the data"):
        build_report(holzinger, {"m": "f =~ x1 + x2 + q7"}, out_dir=out)
    assert not out.exists()


def test_report_purity_section(holzinger, tmp_path):
    labels = {f"x{i}": ("visual" if i <= 3 else "verbal" if i <= 6 else "speed") for i in range(1, 10)}
    result = build_report(holzinger, {"three_factor": THREE_FACTOR, "two_factor": TWO_FACTOR},
                          out_dir=tmp_path / "r", labels=labels, labels_source="test labels")
    assert result.purity["three_factor"]["mean_purity"] == 1.0
    assert result.purity["two_factor"]["latents"]["vs"]["purity"] == 0.5
    assert "test labels" in result.html_path.read_text()


# ----------------------------------------------------------------------------- purity
def test_latent_purity_counts_shares():
    structure = Structure(
        observed=["E1", "E2", "E3", "N1", "N2", "N3", "Z1"], latent=["L1", "L2", "L3"],
        edges=[Edge("L1", x) for x in ("E1", "E2", "E3", "N1")] + [Edge("L2", x) for x in ("N2", "N3")]
        + [Edge("L3", "Z1")] + [Edge("L1", "L2")])
    labels = {"E1": "E", "E2": "E", "E3": "E", "N1": "N", "N2": "N", "N3": "N"}
    purity = latent_purity(structure, labels)
    assert purity["latents"]["L1"] == {"n_items": 4, "n_labelled": 4, "counts": {"E": 3, "N": 1},
                                       "dominant": "E", "purity": 0.75}
    assert purity["latents"]["L2"]["purity"] == 1.0
    assert purity["latents"]["L3"] == {"n_items": 1, "n_labelled": 0, "counts": {}, "dominant": None, "purity": None}
    assert purity["mean_purity"] == pytest.approx((0.75 + 1.0) / 2)
    assert purity["weighted_purity"] == pytest.approx(5 / 6)
    assert purity["unlabelled"] == ["Z1"]


def test_latent_purity_ties_name_every_dominant_construct():
    structure = simple_structure({"L1": ["a1", "b1"]})
    purity = latent_purity(structure, {"a1": "A", "b1": "B"})
    assert purity["latents"]["L1"]["dominant"] == "A/B" and purity["latents"]["L1"]["purity"] == 0.5


def test_labels_from_prefix():
    assert labels_from_prefix(["E1", "Neur_3", "O10"]) == {"E1": "E", "Neur_3": "Neur", "O10": "O"}
    with pytest.raises(LatentsemError, match="no leading letters"):
        labels_from_prefix(["1a"])


# ------------------------------------------------------------------------------ helpers
def test_best_models_directions_and_ties():
    rows = {"a": {"rmsea": 0.05, "cfi": 0.95, "aic": 10.0}, "b": {"rmsea": 0.05, "cfi": 0.90, "aic": None},
            "c": {"rmsea": 0.08, "cfi": 0.97, "aic": 12.0}}
    best = best_models(rows, keys=("rmsea", "cfi", "aic"))
    assert best == {"rmsea": ["a", "b"], "cfi": ["c"], "aic": ["a"]}


def test_model_slugs_are_distinct_and_file_safe():
    slugs = model_slugs(["a b", "a_b", "<script>", "..", "A b"])
    assert list(slugs.values()) == ["a_b", "a_b_2", "script", "model4", "A_b_3"]


def test_check_report_dir(tmp_path):
    assert check_report_dir(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    check_report_dir(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(LatentsemError, match="is not a directory"):
        check_report_dir(tmp_path / "file", force=True)


def test_md_escape_and_code_fence():
    assert render.md_escape("a|b*c_<d>&") == "a\\|b\\*c\\_&lt;d&gt;&amp;"
    assert render.md_escape("[x](y)") == "\\[x](y)"  # no link
    assert render.bold_if("0.5", True) == "**0.5**" and render.bold_if("a_b", False) == "a\\_b"
    assert render.code_fence("x ```y") == "````\nx ```y\n````"
    assert render.fmt(0.12345) == "0.123" and render.fmt(None) == render.MISSING and render.fmt_int(24.0) == "24"


# ------------------------------------------------------------------------------ diagram
def test_diagram_escapes_names_and_draws_edge_kinds():
    structure = simple_structure({"<b>F": ["x&1", "x2", "x3"], "G": ["x4", "x5", "x6"]},
                                 [("<b>F", "G", "undirected")])
    structure = structure.replace(edges=structure.edges + (Edge("x2", "x4", "covariance"),))
    svg = diagram.path_diagram(structure, loadings={("<b>F", "x&1"): 0.7712}, correlations={("x4", "x2"): -0.25},
                               id_prefix="t")
    texts = _svg_texts(svg)
    assert "<b>F" in texts and "x&1" in texts and "0.77" in texts and "-0.25" in texts
    source = diagram.path_diagram_source(structure).source
    assert source.count("style=dashed") == 1 and source.count("dir=none") == 1
    assert "constraint=false" in source  # covariances do not distort the layout


def test_diagram_of_a_parameter_table_with_observed_regressors():
    from latentsem.syntax import parse_lavaan

    table = parse_lavaan("ind60 =~ x1 + x2\ndem60 =~ y1 + y2\ndem60 ~ ind60 + x3\ny1 ~~ y2\n")
    latent, observed, edges = diagram.diagram_edges(table)
    assert ("x3", "dem60", "directed") in edges and ("ind60", "dem60", "directed") in edges
    assert ("y1", "y2", "covariance") in edges
    assert {"x1", "x2", "x3", "y1", "y2"} == set(observed) and set(latent) == {"ind60", "dem60"}
    ET.fromstring(diagram.path_diagram(table))


def test_diagram_stacks_many_items_left_to_right():
    wide = simple_structure({f"F{k}": [f"x{k}{i}" for i in range(5)] for k in range(3)})
    narrow = simple_structure({"F": ["a", "b", "c"]})
    assert "rankdir=LR" in diagram.path_diagram_source(wide).source
    assert "rankdir=TB" in diagram.path_diagram_source(narrow).source


def test_diagram_without_dot_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(LatentsemError) as info:
        diagram.path_diagram(simple_structure({"F": ["a", "b", "c"]}))
    message = str(info.value)
    assert "\n" not in message and "`dot` program is not installed" in message


def test_inline_svg_strips_prolog():
    svg = diagram.path_diagram(simple_structure({"F": ["a", "b", "c"]}))
    assert svg.startswith("<?xml")
    inline = diagram.inline_svg(svg)
    assert inline.startswith("<svg") and inline.endswith("</svg>")
