"""Long-lived tasks under the supervisor: a task that dies is a failure, never silent."""

from __future__ import annotations

import asyncio

import pytest

from gmp_edge.clock import ManualClock
from gmp_edge.supervise import Supervisor, TaskFailure


async def runs_until(stop: asyncio.Event) -> None:
    await stop.wait()


async def raises() -> None:
    await asyncio.sleep(0)
    raise OSError(28, "No space left on device")


async def returns() -> None:
    await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("work", "ends_early", "reason"),
    [
        (raises, False, "OSError: [Errno 28] No space left on device"),
        (raises, True, "OSError: [Errno 28] No space left on device"),
        (returns, False, "ended on its own while the service was running"),
    ],
)
async def test_a_task_that_dies_while_running_is_a_failure(work, ends_early, reason) -> None:
    stop = asyncio.Event()
    seen: list[TaskFailure] = []
    sup = Supervisor(stop, ManualClock(start_us=1_700_000_000_000_000))
    sup.on_failure.append(seen.append)
    task = sup.start("committer", work(), ends_early=ends_early)
    await task
    assert sup.failures == [TaskFailure("committer", reason, 1_700_000_000_000_000)]
    assert seen == sup.failures
    assert not sup.healthy


async def test_a_job_allowed_to_end_early_and_tasks_that_stop_on_request_are_fine() -> None:
    stop = asyncio.Event()
    sup = Supervisor(stop)
    sup.start("retention", returns(), ends_early=True)
    sup.start("committer", runs_until(stop))
    await asyncio.sleep(0)
    stop.set()
    await sup.wait(timeout_s=5)
    assert sup.healthy and sup.failures == []
    assert all(t.done() for t in sup.tasks)


async def test_a_task_cancelled_while_running_is_a_failure_but_not_after_stop() -> None:
    stop = asyncio.Event()
    sup = Supervisor(stop)
    a = sup.start("driver:pc-01", runs_until(asyncio.Event()))
    await asyncio.sleep(0)
    a.cancel()
    with pytest.raises(asyncio.CancelledError):
        await a
    assert [f.reason for f in sup.failures] == ["cancelled while the service was running"]
    stop.set()
    b = sup.start("driver:pc-02", runs_until(asyncio.Event()))
    await sup.wait(timeout_s=0.01)  # outlives the timeout: cancelled, after stop, no failure
    assert b.cancelled()
    assert len(sup.failures) == 1


async def test_a_failing_reporter_does_not_hide_the_failure() -> None:
    stop = asyncio.Event()
    sup = Supervisor(stop)

    def broken(_: TaskFailure) -> None:
        raise RuntimeError("audit trail unavailable")

    later: list[TaskFailure] = []
    sup.on_failure += [broken, later.append]
    await sup.start("monitoring", raises())
    assert len(sup.failures) == 1 and len(later) == 1
