"""The one "degraded" rule of the health answer."""

from __future__ import annotations

import pytest

from gmp_edge.services.status import overall_status

OK_STORE: dict[str, object] = {"error": None}
OK_MON: dict[str, object] = {"error": None}


@pytest.mark.parametrize(
    ("started", "store", "mon", "devices", "notify", "expected"),
    [
        (False, {"error": "disk full"}, OK_MON, [False], None, "starting"),
        (True, OK_STORE, OK_MON, [True, True], None, "ok"),
        (True, OK_STORE, OK_MON, [], None, "ok"),
        (True, {"error": "disk full"}, OK_MON, [True], None, "degraded"),
        (True, OK_STORE, {"error": "step failed"}, [True], None, "degraded"),
        (True, OK_STORE, OK_MON, [True, False], None, "degraded"),
        (True, OK_STORE, OK_MON, [True], {"dropped": 0}, "ok"),
        (True, OK_STORE, OK_MON, [True], {"dropped": 3}, "degraded"),
    ],
)
def test_overall_status(started, store, mon, devices, notify, expected) -> None:
    assert overall_status(started, store, mon, iter(devices), notify) == expected
