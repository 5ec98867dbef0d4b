"""The system-health verdict: ok / degraded / failed with reasons (issue 13 item 9)."""

from __future__ import annotations

from typing import Any

import pytest

from gmp_edge.services.health import BadTag, DeviceState, HealthInputs, assess_health

OK: dict[str, Any] = {"started": True, "clock_synchronised": True}
UP = DeviceState("pc-01", True)
DOWN = DeviceState("press-01", False, "cannot connect: timed out")
BAD_LONG = BadTag("acme/x/y/pc-01/rh", 125.0, 63, "FC04 30001: illegal function")
BAD_SHORT = BadTag("acme/x/y/pc-01/rh", 2.0, 1, "no answer within 1 s")

CASES = [
    ("not started", {"started": False}, "starting", []),
    ("all well", {**OK, "devices": [UP], "bad_tags": [BAD_SHORT]}, "ok", []),
    ("store refuses", {**OK, "store_error": "disk I/O error"}, "failed", ["store_failing"]),
    ("task died", {**OK, "failed_tasks": [("committer", "OSError: x")]}, "failed", ["task_died"]),
    ("device down", {**OK, "devices": [UP, DOWN]}, "degraded", ["device_down"]),
    ("tag Bad for minutes", {**OK, "bad_tags": [BAD_LONG]}, "degraded", ["tag_bad"]),
    (
        "clock not synced",
        {"started": True, "clock_synchronised": False},
        "degraded",
        ["clock_unsynchronised"],
    ),
    ("clock unknown", {"started": True}, "degraded", ["clock_unknown"]),
    ("clock unknown, validated source", {"started": True, "clock_check": "not_reported"}, "ok", []),
    ("evaluation fails", {**OK, "monitoring_error": "boom"}, "degraded", ["monitoring_failing"]),
    (
        "notifications dropped",
        {**OK, "notifications_dropped": 2},
        "degraded",
        ["notifications_dropped"],
    ),
    (
        "integrity check found tampering",
        {**OK, "integrity_problems": ["readings rowid 7: rows changed outside gmp-edge"]},
        "failed",
        ["integrity_failed"],
    ),
    (
        "integrity check cannot run",
        {**OK, "integrity_error": "the check ended with exit code 1"},
        "degraded",
        ["integrity_unchecked"],
    ),
    # keeping up: before these, a service at twice its capacity answered "ok"
    (
        "polls missed",
        {**OK, "missed_polls": [("pc-01", 0), ("press-01", 3)]},
        "degraded",
        ["polls_missed"],
    ),
    ("one late poll", {**OK, "missed_polls": [("press-01", 2)]}, "ok", []),
    ("commits slow", {**OK, "last_commit_ms": 2300.0}, "degraded", ["commits_slow"]),
    ("commits fast", {**OK, "last_commit_ms": 35.0}, "ok", []),
    ("buffer half full", {**OK, "buffer_share": 0.6}, "degraded", ["buffer_filling"]),
    ("buffer full", {**OK, "buffer_share": 1.0}, "failed", ["buffer_filling"]),
    ("evaluation behind", {**OK, "monitoring_behind_s": 42.0}, "degraded", ["monitoring_behind"]),
    ("evaluation a little behind", {**OK, "monitoring_behind_s": 1.5}, "ok", []),
    (
        "worst wins",
        {**OK, "devices": [DOWN], "store_error": "full"},
        "failed",
        ["store_failing", "device_down"],
    ),
]


@pytest.mark.parametrize(("case", "given", "status", "codes"), CASES, ids=[c[0] for c in CASES])
def test_verdict(case: str, given: dict, status: str, codes: list[str]) -> None:
    h = assess_health(HealthInputs(**given))
    assert h.status == status
    assert [r.code for r in h.reasons] == codes


def test_reasons_say_what_and_why() -> None:
    h = assess_health(HealthInputs(**OK, devices=[DOWN], bad_tags=[BAD_LONG]))
    texts = [r.text for r in h.reasons]
    assert texts[0] == "device press-01 not connected: cannot connect: timed out"
    assert "Bad for 125 s (63 polls): FC04 30001: illegal function" in texts[1]


def test_the_bad_poll_threshold_is_configurable() -> None:
    assert assess_health(HealthInputs(**OK, bad_tags=[BAD_SHORT], bad_tag_polls=1)).status == (
        "degraded"
    )
