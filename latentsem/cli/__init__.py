"""The ``latentsem`` command line: a thin click group over the Python API.

Commands are loaded lazily (``import semopy`` alone costs about 2 s), so
``latentsem --help`` and quick commands start fast. Each command module
defines one click command named ``command``. A :class:`LatentsemError` from
the library becomes a one-line ``Error: ...`` message and exit status 2,
with no traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from .. import __version__
from ..exceptions import LatentsemError

# name -> (module under latentsem.cli, one-line help shown by `latentsem --help`)
COMMANDS = {
    "compare": ("compare", "Fit several models to the same items; one row of lavaan fit indices per model."),
    "discover": ("discover", "Learn the latent constructs items measure and their causal graph with LGES; write model JSON."),
    "datasets": ("datasets", "List, describe, locate and fetch the registered real data sets."),
    "export": ("export", "Write a model as lavaan or semopy syntax, Graphviz DOT or structure JSON."),
    "fit": ("fit", "Fit a model (lavaan syntax or .json structure) and print lavaan-exact fit indices."),
    "notears": ("notears", "Learn a weighted DAG among the observed items with linear NOTEARS (Zheng et al. 2018)."),
    "report": ("report", "Fit models to the same items and write a comparison report (HTML, Markdown, SVG)."),
    "simulate": ("simulate", "Simulate item data and the true structure from a random generalized N factor model."),
}


class _UsageExit(click.ClickException):
    """Bad input: printed as one line, exit status 2."""

    exit_code = 2


class LazyGroup(click.Group):
    """A group whose commands are imported only when they are run."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")
        return module.command

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LatentsemError as exc:
            raise _UsageExit(str(exc)) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="latentsem")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
def main(verbose):
    """Learn which latent constructs survey items measure and how they cause one another."""
    if verbose:
        logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if verbose > 1 else logging.INFO,
                            format="%(levelname)s %(name)s: %(message)s")
