"""HTML and Markdown rendering of a report context through autoescaping Jinja2 templates.

:func:`latentsem.report.build.build_report` gathers the numbers into a plain
context (dicts, lists, floats); this module only formats and templates them.

Escaping is automatic, so no inserted value is trusted by accident (unlike
semopy's report, which builds HTML with unescaped ``str.format``):

* HTML: Jinja2's ``autoescape`` escapes every ``{{ value }}``; only the inline
  SVG, which ``dot`` wrote from escaped names, is passed as
  :class:`markupsafe.Markup`.
* Markdown: a ``finalize`` hook escapes every ``{{ value }}`` for Markdown
  (table pipes, emphasis and link characters, and ``< > &`` as HTML entities,
  because Markdown renderers pass raw HTML through).

Numbers follow lavaan's printed output: three decimals, rounded, never
truncated. The paper's Table-3 convention (truncation to three decimals) is a
separate column group whose values :mod:`latentsem.report.build` truncates.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from markupsafe import Markup

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
MISSING = "\u2014"  # em dash for values that do not exist (a reported row without chi-square)
_SLUG_FILE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_MD_SPECIAL = re.compile(r"([\\`*_\[|#])")


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt(value, digits: int = 3) -> str:
    """A number with ``digits`` decimals, rounded as lavaan prints it; an em dash when missing."""
    if _is_missing(value):
        return MISSING
    if isinstance(value, str):
        return value
    return f"{float(value):.{digits}f}"


def fmt_int(value) -> str:
    """An integer count (npar, df, N); an em dash when missing."""
    if _is_missing(value):
        return MISSING
    return f"{int(round(float(value)))}"


def fmt_ci(lower, upper, digits: int = 3) -> str:
    """A confidence interval ``[0.071, 0.114]``, or an empty string when either bound is missing.

    The text holds only formatted numbers, so it is returned as Markup (printed verbatim in
    Markdown too, where the brackets would otherwise be escaped).
    """
    if _is_missing(lower) or _is_missing(upper):
        return Markup("")
    return Markup(f"[{fmt(lower, digits)}, {fmt(upper, digits)}]")


def bold_if(text, condition: bool):
    """Markdown bold (``**text**``) around the escaped ``text`` when ``condition`` holds."""
    escaped = md_escape(text)
    return Markup(f"**{escaped}**" if condition else escaped)


def md_escape(value) -> str:
    """Text safe inside a Markdown table cell or paragraph (no markup, no raw HTML)."""
    text = str(value)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return " ".join(text.splitlines())


def _md_finalize(value):
    """Escape every value a Markdown template prints, unless it is explicitly Markup."""
    if value is None:
        return ""
    if isinstance(value, Markup):
        return str(value)
    return md_escape(value)


def _environment(kind: str):
    import jinja2

    options = dict(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), trim_blocks=True, lstrip_blocks=True,
                   undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    if kind == "html":
        env = jinja2.Environment(autoescape=True, **options)
    else:
        env = jinja2.Environment(autoescape=False, finalize=_md_finalize, **options)
    env.filters.update(fmt=fmt, fmt_int=fmt_int, fmt_ci=fmt_ci, bold_if=bold_if)
    return env


def render_html(context: dict) -> str:
    """The self-contained HTML report (inline CSS and SVG, no external resources).

    Parameters
    ----------
    context : dict
        The context :func:`latentsem.report.build.report_context` returns.
        ``models[i]["svg_inline"]`` must be the ``<svg>`` element from
        :func:`latentsem.report.diagram.inline_svg`; it is the only value
        inserted unescaped.
    """
    context = dict(context)
    context["models"] = [dict(m, svg_inline=Markup(m["svg_inline"])) for m in context["models"]]
    return _environment("html").get_template("report.html.j2").render(**context)


def code_fence(text: str) -> str:
    """A Markdown code fence around ``text``, longer than any backtick run inside it (CommonMark)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text.rstrip()}\n{fence}"


def _checked_slug_file(name: str) -> str:
    if not _SLUG_FILE.fullmatch(name):
        raise ValueError(f"Diagram file name {name!r} is not a file-safe slug; build it with model_slugs().")
    return name


def render_markdown(context: dict) -> str:
    """The Markdown report: the same tables; diagrams are linked ``<slug>.svg`` files beside it.

    lavaan syntax is printed verbatim inside a code fence (:func:`code_fence`),
    the one place where Markdown shows text literally.
    """
    context = dict(context)
    # The SVG file name is a slug of [A-Za-z0-9._-] (build.model_slugs), safe as a link target verbatim.
    context["models"] = [dict(m, syntax_md=Markup(code_fence(m["syntax"])) if m.get("syntax") else None,
                              svg_file=Markup(_checked_slug_file(m["svg_file"])))
                         for m in context["models"]]
    return _environment("md").get_template("report.md.j2").render(**context)
