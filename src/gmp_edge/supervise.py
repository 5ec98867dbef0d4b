"""The service's long-lived tasks under one supervisor: a task that dies is never silent.

A committer, driver or forwarder that raises, or that returns while the service is still
meant to run, stops doing its job while everything around it looks alive. The supervisor
turns that into a :class:`TaskFailure`: logged with its traceback, handed to every
``on_failure`` callback (health marks itself failed, the audit trail records it) and kept
in :attr:`Supervisor.failures` for the health answer. Tasks are not restarted: a dead
task means something is wrong that a person must look at, and the health answer says so
until the service is restarted. Imports nothing of ours but the clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from gmp_edge.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TaskFailure:
    """A supervised task that ended when it should not have: which, why, when (µs UTC)."""

    task: str
    reason: str
    at_us: int


class Supervisor:
    """Start named tasks and watch them until ``stopping`` is set.

    ``stopping`` is the event that tells the tasks to end; a task ending (or raising) after
    it is set is an ordinary stop, before it is a failure, unless the task was started with
    ``ends_early=True`` (a job that has nothing to do under this configuration).
    """

    def __init__(self, stopping: asyncio.Event, clock: Clock = SYSTEM_CLOCK) -> None:
        self.stopping = stopping
        self.clock = clock
        self.failures: list[TaskFailure] = []
        self.on_failure: list[Callable[[TaskFailure], None]] = []
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def healthy(self) -> bool:
        """True while no supervised task has failed."""
        return not self.failures

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """Every task started, in start order."""
        return list(self._tasks)

    def start(
        self, name: str, work: Coroutine[Any, Any, object], *, ends_early: bool = False
    ) -> asyncio.Task[None]:
        """Run ``work`` as the task ``name`` under supervision."""
        task = asyncio.create_task(self._guard(name, work, ends_early), name=name)
        self._tasks.append(task)
        return task

    async def _guard(self, name: str, work: Coroutine[Any, Any, object], ends_early: bool) -> None:
        try:
            await work
        except asyncio.CancelledError:
            if not self.stopping.is_set():
                self._failed(name, "cancelled while the service was running")
            raise
        except Exception as exc:  # the point of a supervisor: nothing escapes unseen
            log.exception("task %s died", name)
            self._failed(name, f"{type(exc).__name__}: {exc}")
            return
        if not ends_early and not self.stopping.is_set():
            self._failed(name, "ended on its own while the service was running")

    def _failed(self, name: str, reason: str) -> None:
        failure = TaskFailure(name, reason, self.clock.now_us())
        self.failures.append(failure)
        log.error("supervised task %s failed: %s", name, reason)
        for callback in self.on_failure:
            try:
                callback(failure)
            except Exception:  # a failing reporter must not hide the failure it reports
                log.exception("reporting the failure of task %s failed", name)

    async def wait(self, timeout_s: float | None = None) -> None:
        """Wait for every task to end (after ``stopping``); cancel what outlives the timeout."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
