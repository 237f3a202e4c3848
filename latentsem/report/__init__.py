"""Reports: fit-comparison reports (HTML, Markdown, JSON) with Graphviz path diagrams.

* :mod:`latentsem.report.build`: :func:`build_report` fits models and writes the report files;
  :func:`latent_purity` scores latents against known item constructs.
* :mod:`latentsem.report.diagram`: SVG path diagrams of structures through ``dot``.
* :mod:`latentsem.report.render`: autoescaping Jinja2 templates (``templates/``) for HTML and Markdown.
"""

from .build import ReportResult, build_report, latent_purity

__all__ = ["ReportResult", "build_report", "latent_purity"]
