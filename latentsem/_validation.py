"""Declarative parameter validation for the estimators (scikit-learn's habit).

Each estimator declares a table ``{name: (check, text)}``; :func:`validate_params`
runs it inside ``fit`` and raises one message template for every parameter:
"The 'max_iter' parameter of NOTEARS must be an int in [1, inf). Got 0 instead."
"""

from __future__ import annotations

import numbers

import numpy as np

from .exceptions import LatentsemError


def interval(kind, low, high, low_closed=True, high_closed=False):
    """(check, text) for an int or float in an interval; bools are refused."""
    base = numbers.Integral if kind == "int" else numbers.Real
    text = (f"{'an' if kind == 'int' else 'a'} {kind} in {'[' if low_closed else '('}{low}, "
            f"{'inf' if high == np.inf else high}{']' if high_closed else ')'}")

    def check(value):
        if isinstance(value, bool) or not isinstance(value, base):
            return False
        above = value >= low if low_closed else value > low
        below = value <= high if high_closed else value < high
        return bool(above and below)

    return check, text


def options(*allowed):
    """(check, text) for one of a few strings."""
    return (lambda value: isinstance(value, str) and value in allowed,
            "a str among {" + ", ".join(repr(a) for a in allowed) + "}")


def boolean():
    """(check, text) for True or False."""
    return (lambda value: isinstance(value, (bool, np.bool_)), "a bool")


def none_or(constraint):
    """(check, text) that also accepts None."""
    check, text = constraint
    return (lambda value: value is None or check(value), f"None or {text}")


def any_of(*constraints):
    """(check, text) met when any of the constraints is."""
    return (lambda value: any(check(value) for check, _ in constraints),
            " or ".join(text for _, text in constraints))


def validate_params(estimator, constraints):
    """Raise LatentsemError for the first parameter of ``estimator`` that breaks its constraint."""
    for name, (check, text) in constraints.items():
        value = getattr(estimator, name)
        if not check(value):
            raise LatentsemError(f"The {name!r} parameter of {type(estimator).__name__} must be {text}. "
                                 f"Got {value!r} instead.")
