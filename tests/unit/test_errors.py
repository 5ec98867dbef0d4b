"""Every exception class in gmp_edge has one root and a name of its own."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections import Counter

import pytest

import gmp_edge
from gmp_edge import errors
from gmp_edge.alarms import IllegalAlarmTransition, MissingAlarmFields
from gmp_edge.deviations import IllegalDeviationTransition, MissingDeviationFields


def _exception_classes() -> list[type[BaseException]]:
    """Every exception class defined (not just imported) in a module of gmp_edge."""
    found: list[type[BaseException]] = []
    for info in pkgutil.walk_packages(gmp_edge.__path__, "gmp_edge."):
        if info.name.rsplit(".", 1)[-1] == "__main__":  # importing it would run the program
            continue
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == info.name
            ):
                found.append(obj)
    return found


CLASSES = _exception_classes()


def test_the_walk_finds_the_known_classes() -> None:
    names = {c.__name__ for c in CLASSES}
    assert {"GmpEdgeError", "WorkflowError", "ConfigError", "StoreError", "FrameError"} <= names
    assert len(CLASSES) > 35


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_exception_derives_from_the_root(cls: type[BaseException]) -> None:
    assert issubclass(cls, errors.GmpEdgeError)


def test_no_two_exception_classes_share_a_name() -> None:
    counts = Counter(c.__name__ for c in CLASSES)
    assert [n for n, k in counts.items() if k > 1] == []


@pytest.mark.parametrize(
    ("cls", "shared", "builtin"),
    [
        (IllegalAlarmTransition, errors.IllegalTransition, ValueError),
        (MissingAlarmFields, errors.MissingFields, ValueError),
        (IllegalDeviationTransition, errors.IllegalTransition, ValueError),
        (MissingDeviationFields, errors.MissingFields, ValueError),
    ],
)
def test_domain_refusals_share_a_base_and_keep_their_builtin(
    cls: type[BaseException], shared: type[BaseException], builtin: type[BaseException]
) -> None:
    assert issubclass(cls, shared) and issubclass(cls, builtin)


def test_callers_that_catch_builtins_still_catch_ours() -> None:
    from gmp_edge.integrity.keys import SigningKeyError
    from gmp_edge.review.gather import BatchNotFound
    from gmp_edge.services.errors import NotFound, Refused

    assert issubclass(SigningKeyError, RuntimeError)
    assert issubclass(BatchNotFound, LookupError)
    assert issubclass(NotFound, LookupError) and issubclass(Refused, PermissionError)
