"""Wires the store's destinations: InfluxDB (readings and events), MQTT, and the disk
watches (store budget, free space) that raise an alarm before the disk fills."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.config import MissingSecret, PlantConfig, secret_from_env
from gmp_edge.edge.config import ConfigError
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.events import SOURCES, EventForwarder, anchor_source
from gmp_edge.historian.forwarder import Forwarder, Sink, reading_encoder
from gmp_edge.historian.influx import InfluxV1Sink, InfluxV2Sink
from gmp_edge.historian.lineprotocol import meta_from_config
from gmp_edge.historian.store import Store, StoreError
from gmp_edge.monitoring.engine import MonitoringEngine
from gmp_edge.periodic import Periodic
from gmp_edge.services import BatchService

log = logging.getLogger("gmp_edge.forwarding")
HIGH_WATER = 0.8  # share of the disk budget that raises the alarm
LOW_WATER = 0.7  # ... and that clears it
FREE_CLEAR = 1.2  # free space back above this multiple of the minimum clears the alarm


@dataclass
class Forwarding:
    """The destinations' run loops (start them as tasks) and what to close at the end."""

    runs: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = field(default_factory=list)
    closers: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    # last passes once collection has stopped, so the final commit is forwarded too
    finals: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)

    async def flush(self, timeout_s: float = 10.0) -> None:
        """Forward what the last commits added (bounded: a dead destination keeps it)."""
        for final in self.finals:
            try:
                await asyncio.wait_for(final(), timeout_s)
            except Exception as exc:  # the backlog stays on disk for the next start
                log.warning("final forwarding pass incomplete: %s", exc)

    async def close(self) -> None:
        """Close clients (HTTP sessions)."""
        for c in self.closers:
            with contextlib.suppress(Exception):
                await c()


def _secret(cfg_path: str, key: str, env: str | None, environ: Mapping[str, str]) -> str | None:
    if env is None:  # optional by configuration: no variable named, none looked up
        return None
    try:
        return secret_from_env(env, environ, key)
    except MissingSecret as exc:
        raise ConfigError(Path(cfg_path), [str(exc)]) from None


def influx_sink(cfg: PlantConfig, cfg_path: str, environ: Mapping[str, str]) -> Sink | None:
    """The configured InfluxDB sink (1.x or 2.x), or None."""
    ic = cfg.influxdb
    if ic is None:
        return None
    if ic.version == 2:
        token = _secret(cfg_path, "influxdb.token_env", ic.token_env, environ)
        assert token is not None and ic.org and ic.bucket
        return InfluxV2Sink(ic.url, token, ic.org, ic.bucket, gzip=ic.gzip)
    password = _secret(cfg_path, "influxdb.password_env", ic.password_env, environ)
    return InfluxV1Sink(
        ic.url, ic.database, ic.retention_policy, ic.username, password, gzip=ic.gzip
    )


def build_forwarding(
    cfg: PlantConfig,
    cfg_path: str,
    service: EdgeService,
    trail: AuditTrail,
    engine: MonitoringEngine,
    batches: BatchService,
    environ: Mapping[str, str] | None = None,
) -> Forwarding:
    """Forwarders for the configured destinations, registered with the service (commit
    wake-ups and health); a missing secret refuses to start with the key that names it."""
    environ = os.environ if environ is None else environ
    fw = Forwarding()
    store = service.store
    sink = influx_sink(cfg, cfg_path, environ)
    if sink is not None and cfg.influxdb is not None:
        readings = Forwarder(
            store,
            sink,
            reading_encoder(meta_from_config(cfg)),
            "influxdb",
            batch_size=cfg.influxdb.batch_size,
            flush_interval_s=cfg.influxdb.flush_interval_s,
        )
        service.commit_listeners.append(readings.wake)
        service.forwarders["influxdb"] = readings.status
        fw.runs.append(readings.run)

        async def last_readings() -> None:
            while True:
                d = await readings.drain_once()
                if d.caught_up or d.retry is not None:
                    return

        fw.finals.append(last_readings)

        async def watch_quarantine(stop: asyncio.Event) -> None:
            # a quarantined point is kept, but somebody must look at it: raise an alarm
            async def check() -> None:
                n = int(readings.status().get("quarantined") or 0)
                await asyncio.to_thread(
                    engine.system_condition,
                    "influxdb_quarantine",
                    n > 0,
                    float(n),
                    0.0,
                    f"{n} reading(s) refused by InfluxDB are in quarantine"
                    if n
                    else "no reading in quarantine",
                )

            await Periodic(check, 10, name="influxdb quarantine").run(stop)

        fw.runs.append(watch_quarantine)
        if cfg.influxdb.events:
            events = EventForwarder(
                store,
                trail,
                sink,
                "influxdb",
                flush_interval_s=cfg.influxdb.flush_interval_s,
                # the signed anchors too: a copy the box cannot rewrite (ADR 0027)
                sources=(*SOURCES, anchor_source(store.path)),
            )
            service.forwarders["influxdb-events"] = events.status
            fw.runs.append(events.run)

            async def last_events() -> None:
                await events.drain_once()

            fw.finals.append(last_events)
        aclose = getattr(sink, "aclose", None)
        if aclose is not None:
            fw.closers.append(aclose)
    if cfg.mqtt is not None:
        fw.runs += _mqtt(cfg, service, engine, batches, environ)
    if cfg.store.disk_budget_mb is not None:
        budget = int(cfg.store.disk_budget_mb * 1024 * 1024)
        fw.runs.append(lambda stop: watch_disk_budget(store, engine, budget, stop))
    if cfg.store.min_free_disk_mb > 0:
        minimum = int(cfg.store.min_free_disk_mb * 1024 * 1024)
        fw.runs.append(lambda stop: watch_free_disk(store, engine, minimum, stop))
    return fw


def _mqtt(
    cfg: PlantConfig,
    service: EdgeService,
    engine: MonitoringEngine,
    batches: BatchService,
    environ: Mapping[str, str],
) -> list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]]:
    from gmp_edge.mqttlink import BatchCommand, MqttPublisher

    assert cfg.mqtt is not None

    async def batch_command(cmd: BatchCommand) -> None:
        # the same workflow as the API's (rooms checked, one batch-id rule); a refusal
        # goes back to the MES on the rejected-commands topic
        actor = f"mqtt:mes:{cmd.raw.get('sender', 'mes')}"
        reason = "MES command over MQTT"
        if cmd.command == "start":
            await asyncio.to_thread(
                batches.start,
                actor,
                cmd.batch_id,
                cmd.product,
                cmd.rooms,
                cmd.equipment,
                cmd.at_us,
                reason,
            )
        else:
            await asyncio.to_thread(batches.end, actor, cmd.batch_id, cmd.at_us, reason)

    pub = MqttPublisher(
        cfg.mqtt,
        service.store.path,
        {t.path: t.unit for t in cfg.tags},
        cfg.site.id,
        on_batch_command=batch_command,
        environ=environ,
    )
    service.commit_listeners.append(pub.committed)
    service.forwarders["mqtt"] = lambda: pub.status().to_dict()
    interval = cfg.mqtt.status_interval_s

    async def statuses(stop: asyncio.Event) -> None:
        async def publish() -> None:
            rooms = engine.room_alarm_states()
            running = {r: b.id for b in engine.books.batches.in_progress() for r in b.rooms}
            for room in cfg.rooms:
                tracker = engine.trackers.get(room.id)
                alarms = rooms.get(room.id, [])
                pub.publish_room_status(
                    room.id,
                    {
                        "grade": room.grade.value if room.grade else None,
                        "production_state": tracker.state if tracker else None,
                        "batch": running.get(room.id),
                        "alarms": [
                            {"id": a.id, "state": a.state.value, "priority": a.priority.value}
                            for a in alarms
                        ],
                    },
                )
            for d in service.device_statuses():
                pub.publish_device_status(
                    d.device_id,
                    {
                        "state": d.state.value,
                        "protocol": d.protocol,
                        "last_good_us": d.last_good_us,
                        "last_error": d.last_error,
                    },
                )

        await Periodic(publish, interval, name="mqtt statuses").run(stop)

    return [pub.run, statuses]


def store_bytes(store: Store) -> int:
    """Size of the store on disk: database, WAL and shared memory files."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        p = store.path.with_name(store.path.name + suffix)
        with contextlib.suppress(OSError):
            total += p.stat().st_size
    return total


async def watch_disk_budget(
    store: Store, engine: MonitoringEngine, budget: int, stop: asyncio.Event, every_s: float = 30
) -> None:
    """Raise a critical alarm at 80 % of the disk budget, clear it below 70 %."""

    async def check() -> None:
        used = await asyncio.to_thread(store_bytes, store)
        share = used / budget
        if share >= HIGH_WATER:
            await asyncio.to_thread(
                engine.system_condition,
                "disk_budget",
                True,
                float(used),
                budget * HIGH_WATER,
                f"store uses {share:.0%} of its {budget / 2**20:.0f} MiB disk budget",
            )
        elif share < LOW_WATER:
            await asyncio.to_thread(
                engine.system_condition,
                "disk_budget",
                False,
                float(used),
                budget * HIGH_WATER,
                f"store back to {share:.0%} of its disk budget",
            )

    await Periodic(check, every_s, name="disk budget").run(stop)


def free_bytes(store: Store) -> int:
    """Free space (for this process) on the file system that holds the store."""
    return shutil.disk_usage(store.path.resolve().parent).free


async def watch_free_disk(
    store: Store, engine: MonitoringEngine, minimum: int, stop: asyncio.Event, every_s: float = 30
) -> None:
    """Raise a critical alarm when the store's disk has less than ``minimum`` bytes free,
    clear it above 1.2x. A failed check is logged once per cause and tried again: a full
    disk that cannot even record the alarm must not end the watch."""
    last_error = ""

    async def check() -> None:
        nonlocal last_error
        try:
            free = await asyncio.to_thread(free_bytes, store)
            mib = free / 2**20
            if free < minimum:
                await asyncio.to_thread(
                    engine.system_condition,
                    "free_disk",
                    True,
                    float(free),
                    float(minimum),
                    f"only {mib:.0f} MiB free on the store's disk "
                    f"(minimum {minimum / 2**20:.0f} MiB): commits fail when it is full",
                )
            elif free > minimum * FREE_CLEAR:
                await asyncio.to_thread(
                    engine.system_condition,
                    "free_disk",
                    False,
                    float(free),
                    float(minimum),
                    f"{mib:.0f} MiB free on the store's disk again",
                )
            last_error = ""
        except (OSError, sqlite3.Error, StoreError) as exc:
            if str(exc) != last_error:
                log.error("free disk watch: %s", exc)
            last_error = str(exc)

    await Periodic(check, every_s, name="free disk").run(stop)
