"""Typed exceptions and warnings shared by every module.

Every user-facing error is a :class:`LatentsemError` (a ``ValueError``) whose
message is one line that names the problem and says what to do; the CLI prints
that line and exits non-zero without a traceback.
"""


class LatentsemError(ValueError):
    """Base class of latentsem's user-facing errors."""


class DataError(LatentsemError):
    """Item data that cannot be used as given (file, columns, values)."""


class StructureError(LatentsemError):
    """A structure (latent model graph) that violates its own rules."""


class ModelSyntaxError(LatentsemError):
    """lavaan model syntax that cannot be read; carries line and column."""

    def __init__(self, message, line=None, column=None, source_line=None):
        self.line = line
        self.column = column
        self.source_line = source_line
        where = f" at line {line}, pos {column}" if line is not None else ""
        super().__init__(f"{message}{where}")

    def caret(self):
        """The offending source line with a caret under the column, or ''."""
        if self.source_line is None or self.column is None:
            return ""
        return f"{self.source_line}\n{' ' * max(self.column - 1, 0)}^"


class ConvergenceWarning(UserWarning):
    """An optimizer stopped before meeting its convergence criterion."""


class NumericalWarning(UserWarning):
    """A numerical safeguard was used: a variance floor, a Heywood case, a pinv."""
