"""The `gmp-edge` command line: run, simulate, check-config, demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import uvicorn

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import now_us
from gmp_edge.config import MissingSecret, PlantConfig, secret_from_env
from gmp_edge.edge.api_wiring import (
    build_api,
    demo_accounts,
    notification_dispatcher,
    notify_from_thread,
)
from gmp_edge.edge.claim import PortInUse, claimed
from gmp_edge.edge.config import ConfigError, load_config
from gmp_edge.edge.forwarding import build_forwarding
from gmp_edge.edge.heap import return_large_blocks
from gmp_edge.edge.integrity_watch import watch_integrity
from gmp_edge.edge.lifecycle import (
    anchor_periodically,
    audit_crash,
    audit_start,
    audit_stop,
    audit_task_failure,
    integrity_changed,
    watch_clock,
    write_anchor,
)
from gmp_edge.edge.service import EdgeService
from gmp_edge.edge.wiring import polling_plan
from gmp_edge.historian.store import Store, StoreError
from gmp_edge.integrity.anchoring import StoreRefused, preflight
from gmp_edge.services.integrity import verify_anchors_only, verify_store
from gmp_edge.storage.lock import LockUnavailable, StoreInUse
from gmp_edge.storage.schema import summarised_upgrades
from gmp_edge.supervise import Supervisor
from gmp_edge.timefmt import iso, parse_iso

log = logging.getLogger("gmp_edge")


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


async def serve(
    cfg: PlantConfig,
    sha: str,
    stop: asyncio.Event,
    config_path: str,
    banner: str = "",
    demo: bool = False,
    sock: socket.socket | None = None,
) -> None:
    """Run collection, the store and the API until ``stop``; audit start, stop and clock.

    ``sock`` is the API's listening socket, claimed (with the store's lock) before anything
    is written; without one, serve claims both itself."""
    if sock is None:
        with claimed(cfg) as own:
            await serve(cfg, sha, stop, config_path, banner, demo, own)
        return
    # damaged, emptied, replaced, cut back or written behind a stopped service: refused
    # before anything is written (ADR 0027)
    pre = preflight(cfg.store.path)
    with summarised_upgrades(cfg.store.path):  # one log line for the dozen stores opened here
        store = Store(cfg.store.path)
        trail = AuditTrail(cfg.store.path)
        audit_start(trail, config_path, sha)
        audit_crash(trail, pre, store.last_heartbeat_us())
        write_anchor(cfg.store.path, "recovered" if pre.crashed else "start")
        service = EdgeService(cfg, sha, store)
        dispatcher = notification_dispatcher(cfg, trail)
        parts = build_api(cfg, service, trail, notify_from_thread(dispatcher), config_path)
        parts.engine.notify_status = dispatcher.status
        try:
            forwarding = build_forwarding(
                cfg, config_path, service, trail, parts.engine, parts.services.batches
            )
        except ConfigError as exc:
            parts.close()
            store.close()
            trail.close()
            print(exc, file=sys.stderr)
            raise SystemExit(2) from None
    had_users = parts.directory.has_users()
    accounts = demo_accounts(parts.directory) if demo else []
    if demo and had_users:
        banner += (
            "\n  demo accounts exist from an earlier run (their passwords were shown then);"
            f"\n  delete {cfg.store.path.parent} to start afresh"
        )
    if not parts.directory.has_users():
        banner += (
            "\n  no users yet: create the first administrator with\n"
            f"    gmp-edge users create-admin --config {config_path} --user-id ... --name ..."
        )
    ssl: dict[str, Any] = {}
    if cfg.api.tls:
        ssl = {"ssl_certfile": str(cfg.api.tls_certfile), "ssl_keyfile": str(cfg.api.tls_keyfile)}
    server = uvicorn.Server(server_config(cfg, parts.app, **ssl))
    # every long-lived task supervised: one that dies fails health, is logged and audited
    service.on_task_failure.append(lambda failure: audit_task_failure(trail, failure))
    supervisor = Supervisor(stop)
    supervisor.on_failure.append(service.task_failed)
    supervisor.start("clock", watch_clock(trail, stop))
    supervisor.start(
        "anchor",
        anchor_periodically(cfg.store.path, stop, cfg.security.audit_anchor_minutes * 60),
        ends_early=True,
    )
    supervisor.start(
        "integrity",
        watch_integrity(
            cfg.store.path,
            service.integrity,
            stop,
            cfg.security.integrity_check_minutes * 60,
            lambda status: integrity_changed(trail, parts.engine, cfg.store.path, status),
            cfg.security.integrity_scrub_readings,
        ),
        ends_early=True,
    )
    supervisor.start("service", service.run(stop))
    supervisor.start("monitoring", parts.engine.run(stop))
    supervisor.start("notify", dispatcher.run(stop))
    tasks = supervisor.tasks
    # destinations stop after collection, so the last commit still goes out
    forward_stop = asyncio.Event()
    forwarders = Supervisor(forward_stop)
    forwarders.on_failure.append(service.task_failed)
    for i, run in enumerate(forwarding.runs):
        forwarders.start(f"forward:{i}", run(forward_stop))
    forward_tasks = forwarders.tasks
    # the API's request threads (anyio's default limiter of this loop: 40 otherwise)
    anyio.to_thread.current_default_thread_limiter().total_tokens = cfg.api.workers
    # SQLite gives the interpreter lock away for every row it steps; with request threads
    # busy, getting it back waited out the whole 5 ms switch interval per row: the alarm
    # path's reads took seconds under 20 screens (ADR 0028). 0.5 ms: measured 4x better.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    api_task = asyncio.create_task(server.serve(sockets=[sock]), name="api")

    def close() -> None:
        parts.close()  # (forwarding's HTTP clients are closed in the loop, below)
        store.close()
        trail.close()

    while not server.started and not api_task.done():
        await asyncio.sleep(0.05)
    if api_task.done():
        stop.set()
        forward_stop.set()
        await asyncio.gather(*tasks, *forward_tasks)
        audit_stop(trail, "API could not listen")
        close()
        write_anchor(cfg.store.path, "stop")
        raise SystemExit(f"API could not listen on {cfg.api.host}:{cfg.api.port}")
    port = cfg.api.port
    for srv in server.servers:  # port 0 asks the OS for a free port: show the real one
        for sock in srv.sockets:
            port = sock.getsockname()[1]
    url = f"{'https' if cfg.api.tls else 'http'}://{cfg.api.host}:{port}"
    if accounts:
        banner += "\n  demo accounts (shown once; passwords are random):"
        for uid, role, password in accounts:
            banner += f"\n    {uid:<14} {role:<14} {password}"
    print(
        f"gmp-edge collecting {len(cfg.tags)} tags from {len(cfg.devices)} devices into "
        f"{cfg.store.path}\n  live status page: {url}/\n  API docs (OpenAPI): {url}/docs\n"
        f"  health: {url}/api/health{banner}\n  stop with Ctrl-C",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        server.should_exit = True
        await asyncio.gather(*tasks, api_task, return_exceptions=True)
        await forwarding.flush()
        forward_stop.set()
        await asyncio.gather(*forward_tasks, return_exceptions=True)
        await forwarding.close()
        audit_stop(trail)
        close()
        write_anchor(cfg.store.path, "stop")  # after the last write of every part
        left = service.uncommitted  # checked, not assumed
        if left:
            print(
                f"gmp-edge stopped; {left} collected readings or gaps could NOT be committed "
                "to the store (see the log)",
                file=sys.stderr,
                flush=True,
            )
        else:
            print("gmp-edge stopped; every reading collected is in the store.", flush=True)


#: The interpreter's thread switch interval in the running service (CPython's is 5 ms).
SWITCH_INTERVAL_S = 0.0005


def server_config(cfg: PlantConfig, app: Any, **ssl: Any) -> uvicorn.Config:
    """How uvicorn serves the API. Proxy headers count only from ``[api] trusted_proxies``:
    uvicorn believes X-Forwarded-For from loopback by default, which let any local process
    pass the per-client sign-in limit and write a made-up address into the audit trail."""
    proxies = [str(p) for p in cfg.api.trusted_proxies]
    return uvicorn.Config(
        app,
        host=cfg.api.host,
        port=cfg.api.port,
        log_level="warning",
        http="httptools",  # a declared dependency: never a silent fall back to h11
        server_header=False,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or [],
        **ssl,
    )


def _load(path: str) -> tuple[PlantConfig, str]:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def _load_with_store(path: str) -> PlantConfig:
    # Commands that read the store: a missing store is a usage error, not an empty one.
    cfg, _ = _load(path)
    if not cfg.store.path.exists():
        print(f"no store at {cfg.store.path}", file=sys.stderr)
        raise SystemExit(2)
    return cfg


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a config and print the polling plan."""
    cfg, sha = _load(args.config)
    print(f"{args.config}: valid (sha256 {sha})")
    print(
        f"site {cfg.site.id}: {len(cfg.areas)} area(s), {len(cfg.rooms)} room(s), "
        f"{len(cfg.equipment)} equipment, {len(cfg.devices)} device(s), {len(cfg.tags)} tag(s)"
    )
    print("polling plan:")
    for line in polling_plan(cfg):
        print("  " + line)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Collect from the configured devices and serve the API."""
    cfg, sha = _load(args.config)
    return_large_blocks()  # a steady RSS at scale (edge/heap.py)

    async def main(stop: asyncio.Event) -> None:
        with claimed(cfg) as sock:
            await serve(cfg, sha, stop, args.config, sock=sock)

    return _until_stopped(main)


def _until_stopped(main: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    """Run ``main`` until SIGINT/SIGTERM sets its stop event; a store that cannot be
    opened or written is one line on stderr and exit code 1, not a traceback."""

    async def run() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        await main(stop)

    try:
        asyncio.run(run())
    except (StoreError, LockUnavailable) as exc:
        print(f"store error: {exc}", file=sys.stderr)
        return 1
    except (StoreInUse, PortInUse, StoreRefused) as exc:  # refused before anything was written
        print(f"gmp-edge not started: {exc}", file=sys.stderr)
        return 1
    return 0


def _sim_plant(cfg: PlantConfig, path: str) -> Any:
    """The simulated plant named in the config's [simulation] section (exit 2 if none or bad)."""
    from gmp_edge.simulators.plant import SimulatedPlant  # only the demo and simulate need them
    from gmp_edge.simulators.spec import SpecError, load_spec

    if cfg.simulation is None:
        print(f"{path}: no [simulation] section names a simulator spec", file=sys.stderr)
        raise SystemExit(2)
    try:
        return SimulatedPlant(load_spec(cfg.simulation.spec))
    except SpecError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run only the simulated plant, for any Modbus / OPC UA client."""
    cfg, _ = _load(args.config)

    async def main(stop: asyncio.Event) -> None:
        async with _sim_plant(cfg, args.config) as plant:
            print(json.dumps(plant.ready_info()), flush=True)
            print("simulated plant running; stop with Ctrl-C", file=sys.stderr, flush=True)
            await stop.wait()

    return _until_stopped(main)


def cmd_demo(args: argparse.Namespace) -> int:
    """Simulated plant + collection + API on 127.0.0.1, in one process."""
    cfg, sha = _load(args.config)
    return_large_blocks()  # a steady RSS at scale (edge/heap.py)

    async def main(stop: asyncio.Event) -> None:
        with claimed(cfg) as sock:  # before the simulated plant takes its ports
            async with _sim_plant(cfg, args.config) as plant:
                banner = "\n  simulated plant: " + json.dumps(plant.ready_info())
                await serve(cfg, sha, stop, args.config, banner, demo=True, sock=sock)

    return _until_stopped(main)


def cmd_audit(args: argparse.Namespace) -> int:
    """Verify, list or export the audit trail of the config's store."""
    cfg = _load_with_store(args.config)
    trail = AuditTrail(cfg.store.path)
    try:
        if args.action == "verify":
            return _audit_verify(cfg.store.path, trail, args.expect_head)
        if args.action == "export":
            sys.stdout.write(trail.export(args.format))
            return 0
        for e in trail.entries(
            record_type=args.record_type, record_id=args.record_id, actor=args.actor
        ):
            print(
                json.dumps(
                    {
                        "seq": e.seq,
                        "ts": iso(e.ts_us),
                        "actor": e.actor,
                        "action": e.action,
                        "record": f"{e.record_type}/{e.record_id}",
                        "reason": e.reason,
                        "old": e.old,
                        "new": e.new,
                    }
                )
            )
        return 0
    finally:
        trail.close()


def _audit_verify(store: Path, trail: AuditTrail, expect_head: str | None) -> int:
    """The audit chain and the signed anchors of it (the whole record: ``gmp-edge verify``)."""
    n, head, brk = trail.verify()
    if brk is not None:
        print(f"audit trail BROKEN at entry {brk.seq}: {brk.reason} ({n} entries read, {store})")
        return 1
    problems = verify_anchors_only(store).problems()
    if expect_head:
        # an anchor taken earlier must still be in the chain: later entries are fine
        found = [e.seq for e in trail.entries(limit=2**62) if e.hash == expect_head]
        if not found:
            problems.append(
                f"the anchored hash {expect_head} is no entry of the trail: entries were "
                "removed or rewritten after it was taken"
            )
    if problems:
        print(f"audit trail NOT intact: {n} entries chained, but ({store}):")
        for line in problems:
            print(f"  - {line}")
        return 1
    print(f"audit trail intact: {n} entries, head sha256 {head} ({store}), matching its anchors")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Check the whole original record: SQLite, audit chain, seal ledger, signed anchors."""
    cfg = _load_with_store(args.config)
    if args.accept_tail is not None:
        return _accept_tail(cfg, args)

    def progress(message: str) -> None:
        print(f"  ... {message}", file=sys.stderr, flush=True)

    verdict = verify_store(cfg.store.path, args.fingerprint, progress)
    for line in verdict.summary():
        print(line)
    problems = verdict.problems()
    if not problems:
        print("VERIFIED: the store is the original record, as sealed and anchored")
        return 0
    print(f"NOT VERIFIED: {len(problems)} problem(s)")
    for line in problems:
        print(f"  - {line}")
    return 1


def _accept_tail(cfg: PlantConfig, args: argparse.Namespace) -> int:
    # An administrator records that what was written after a clean stop was reviewed; the
    # entry and a new anchor then let the service start again. Nothing else is accepted.
    from gmp_edge.identity.roles import Role
    from gmp_edge.identity.users import Directory

    reason = args.accept_tail.strip()
    if not reason or not args.by:
        print("--accept-tail needs a reason and --by (an administrator's user id)", file=sys.stderr)
        return 2
    verdict = verify_store(cfg.store.path, args.fingerprint)
    problems = verdict.problems()
    tail_only = (
        verdict.anchors is not None
        and len(problems) == 1
        and (verdict.anchors.unanchored_audit or verdict.anchors.unanchored_blocks)
    )
    if verdict.running or not tail_only:
        print(
            "refused: --accept-tail accepts only entries written after a clean stop, with "
            "gmp-edge stopped and nothing else wrong; run 'gmp-edge verify'",
            file=sys.stderr,
        )
        return 1
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else _ask_password()
    trail = AuditTrail(cfg.store.path)
    directory = Directory(cfg.store.path, trail)
    try:
        signin = directory.authenticate(args.by, password, purpose="cli")
        if not signin.ok or directory.get(args.by).role is not Role.ADMINISTRATOR:
            print("refused: wrong user id or password, or not an administrator", file=sys.stderr)
            return 1
        assert verdict.anchors is not None and verdict.anchors.newest is not None
        trail.append(
            args.by,
            "integrity.tail_accepted",
            "store",
            str(cfg.store.path),
            reason,
            None,
            {
                "after_anchor": verdict.anchors.newest.describe(),
                "audit_entries": verdict.anchors.unanchored_audit,
                "seal_blocks": verdict.anchors.unanchored_blocks,
            },
        )
    finally:
        directory.close()
        trail.close()
    if write_anchor(cfg.store.path, "accepted") is None:
        print("the acceptance is recorded, but its anchor could not be written (see the log)")
        return 1
    print(f"accepted by {args.by}: the store may be started again")
    return 0


def _ask_password() -> str:
    import getpass

    return getpass.getpass("password: ")


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Compare InfluxDB with the local record for a batch window or a time range."""

    from gmp_edge.historian.influx import reconcile
    from gmp_edge.monitoring.records import BatchBook

    cfg, _ = _load(args.config)
    if cfg.influxdb is None:
        print(f"{args.config}: no [influxdb] section: nothing to reconcile", file=sys.stderr)
        return 2
    store = Store(cfg.store.path)
    trail = AuditTrail(cfg.store.path)
    try:
        if args.batch:
            books = BatchBook(trail)
            batch = books.get(args.batch)
            books.close()
            if batch is None:
                print(f"no batch {args.batch!r}", file=sys.stderr)
                return 2
            start, end = batch.start_us, batch.end_us or now_us()
            rooms, equipment = set(batch.rooms), set(batch.equipment)
            scope = [
                t.path for t in cfg.tags if t.segments[2] in rooms or t.segments[3] in equipment
            ]
        else:

            def us(text: str) -> int:
                try:
                    return parse_iso(text)
                except ValueError as exc:
                    raise SystemExit(str(exc)) from None

            start, end = us(args.start), us(args.end) if args.end else now_us()
            scope = [t.path for t in cfg.tags]
        counts = {p: len(set(store.records(p, start, end)["ts"].tolist())) for p in scope}
        ic = cfg.influxdb
        password = (
            secret_from_env(ic.password_env, what="influxdb.password_env")
            if ic.password_env
            else None
        )
        result = asyncio.run(
            reconcile(
                ic.url,
                ic.database,
                scope,
                start,
                end,
                counts,
                username=ic.username,
                password=password,
            )
        )
    finally:
        store.close()
        trail.close()
    bad = 0
    print(f"reconciliation {iso(start)} .. {iso(end)} against {ic.url} db {ic.database}")
    print(f"{'tag':<70} {'local':>8} {'influx':>8} {'missing':>8} {'extra':>8}")
    for path, r in sorted(result.items()):
        flag = "" if not (r.missing or r.extra) else "  <-- differs"
        bad += bool(flag)
        print(f"{path:<70} {r.local:>8} {r.remote:>8} {r.missing:>8} {r.extra:>8}{flag}")
    print(
        "complete: InfluxDB equals the local record"
        if not bad
        else f"{bad} tag(s) differ from the local record"
    )
    return 1 if bad else 0


def cmd_segments(args: argparse.Namespace) -> int:
    """Fold readings into the review segments, or check the segments against the readings."""

    from gmp_edge.review.gather import segments_differ

    cfg = _load_with_store(args.config)
    if args.action == "rebuild" and (changed := _readings_changed(cfg.store.path)):
        # the segments may then be the only copy of the values as first recorded
        print(
            "refused: the readings table was changed outside gmp-edge, so the segments may "
            "hold the values as first recorded; keep them as evidence and investigate "
            "('gmp-edge verify' names every change):",
            file=sys.stderr,
        )
        for line in changed:
            print(f"  - {line}", file=sys.stderr)
        return 1
    store = Store(cfg.store.path)
    try:
        if args.action == "rebuild":
            store.reset_segments()
            print("segments deleted; folding every reading anew")
        if args.action in ("index", "rebuild"):
            total, t0 = 0, time.monotonic()
            while n := store.index_segments(max_rows=200_000):
                total += n
                print(
                    f"  folded {total:,} readings ({total / (time.monotonic() - t0):,.0f}/s)",
                    flush=True,
                )
            print(f"segments up to date: reading id {store.segments_cursor()}")
            return 0

        def us(text: str | None, default: int) -> int:
            if not text:
                return default
            try:
                return parse_iso(text)
            except ValueError as exc:
                raise SystemExit(str(exc)) from None

        start, end = us(args.start, 0), us(args.end, 2**62)
        paths = store.tag_paths()
        differ, checked = [], 0
        # tags a chunk: bounds the memory; the table (no per-tag index) is scanned once a chunk
        chunk = 500
        for i in range(0, len(paths), chunk):
            # each chunk over one snapshot: a running box commits and folds meanwhile
            n, found = segments_differ(store.path, paths[i : i + chunk], start, end)
            checked += n
            if len(paths) > chunk:
                done = min(i + chunk, len(paths))
                print(f"checked {done:,} of {len(paths):,} tags", file=sys.stderr, flush=True)
            for p, fast_n, raw_n in found:
                differ.append(p)
                print(f"DIFFERS {p}: segments give {fast_n} readings, the readings table {raw_n}")
        window = f"{iso(start)} .. {iso(end)}" if args.start or args.end else "all time"
        if differ:
            changed = _readings_changed(store.path)
            if changed:
                print(
                    f"{len(differ)} of {len(paths)} tags differ ({window}), and the readings "
                    "table was changed outside gmp-edge: the segments may hold the values as "
                    "first recorded; keep them (do not rebuild) and run 'gmp-edge verify'"
                )
                for line in changed:
                    print(f"  - {line}")
            else:
                print(
                    f"{len(differ)} of {len(paths)} tags differ ({window}); the readings match "
                    "their seals, so the segments were changed: 'gmp-edge segments rebuild' "
                    "derives them anew from the record"
                )
            return 1
        print(
            f"segments equal the readings table: {checked:,} readings of {len(paths)} tags, "
            f"{window}; {store.last_reading_id() - store.segments_cursor():,} not folded yet "
            "(read from the table)"
        )
        return 0
    finally:
        store.close()


def _readings_changed(store: Path) -> list[str]:
    """What the seal ledger finds wrong with the readings (empty: they match their seals)."""
    from gmp_edge.integrity.check import check_ledger

    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        conn.execute("begin")
        rep = check_ledger(conn)
    finally:
        conn.close()
    if not rep.findings.counts.get("readings"):
        return []
    return [line for line in rep.findings.lines() if "reading" in line]


def cmd_evidence(args: argparse.Namespace) -> int:
    """Verify an evidence package offline, or export one for a batch."""
    if args.action == "verify":
        from gmp_edge.evidence.verify import main as verify_main

        argv = [args.file] + (["--fingerprint", args.fingerprint] if args.fingerprint else [])
        return int(verify_main(["verify", *argv]))
    from gmp_edge.monitoring.engine import Books
    from gmp_edge.release.decisions import DecisionBook
    from gmp_edge.services import GmpServices, WorkflowError
    from gmp_edge.services.records import OpenRecords
    from gmp_edge.signatures.register import SignatureRegister

    if not args.config or not args.batch:
        print("export needs --config and --batch", file=sys.stderr)
        return 2
    cfg, _ = _load(args.config)
    store = Store(cfg.store.path)
    trail = AuditTrail(cfg.store.path)
    books = Books.open(trail)
    reg = SignatureRegister(trail)
    decisions = DecisionBook(trail)
    records = OpenRecords(store, books, cfg)
    try:
        exports = GmpServices.exports_over(records, trail, reg, decisions, args.config)
        info = exports.evidence_package("system:cli", args.batch, Path(args.file), False)
    except WorkflowError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    finally:
        decisions.close()
        reg.close()
        books.close()
        store.close()
        trail.close()
    print(
        f"{info.path}: {info.readings:,} readings, sha256 {info.sha256}, "
        f"signed by key {info.key_fingerprint}"
    )
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    import getpass

    first = getpass.getpass("new password: ")
    if getpass.getpass("repeat it: ") != first:
        print("the two passwords differ", file=sys.stderr)
        raise SystemExit(2)
    return first


def cmd_users(args: argparse.Namespace) -> int:
    """Create the first administrator, list users, or recover an account (the API manages
    them otherwise).

    ``unlock`` and ``reset-password`` are for when no administrator can sign in (the only
    one locked out, or the password lost): whoever can run commands on the edge box acts,
    audited as ``system:cli@<hostname>`` with the reason. While the service runs it sees
    the change at once (its next anchor covers it); on a store stopped cleanly the command
    writes a ``cli`` anchor after its entries, so the service starts again. A store that
    already had unreviewed entries after its stop gets none: ``verify --accept-tail`` stays
    the one way past those.
    """
    from gmp_edge.identity.users import Directory, IdentityError
    from gmp_edge.integrity.anchors import CLOSING_KINDS
    from gmp_edge.storage.lock import StoreLock

    def act(cfg: PlantConfig) -> int:
        sec = cfg.security
        trail = AuditTrail(cfg.store.path)
        directory = Directory(
            cfg.store.path,
            trail,
            max_failed_attempts=sec.max_failed_signins,
            password_max_age_days=sec.password_max_age_days,
            lockout_minutes=sec.lockout_minutes,
            password_history=sec.password_history,
        )
        actor = f"system:cli@{socket.gethostname()}"[:64]
        try:
            if args.action == "create-admin":
                if not args.user_id or not args.name:
                    print("create-admin needs --user-id and --name", file=sys.stderr)
                    return 2
                user = directory.create_first_administrator(
                    args.user_id, args.name, _read_password(args)
                )
                print(f"administrator {user.id} ({user.full_name}) created")
            elif args.action == "unlock":
                user = directory.unlock(actor, args.user_id, args.reason)
                print(f"{user.id} unlocked by {actor}: may sign in again")
            elif args.action == "reset-password":
                directory.get(args.user_id)  # no password asked for a user who is not there
                directory.set_password(actor, args.user_id, _read_password(args), args.reason)
                locked = directory.get(args.user_id).locked
                print(
                    f"password of {args.user_id} reset by {actor}: to be changed at the next"
                    " sign-in" + ("; still locked (gmp-edge users unlock)" if locked else "")
                )
            else:
                for u in directory.users():
                    state = "locked" if u.locked else ("active" if u.active else "deactivated")
                    print(f"{u.id}\t{u.role.value}\t{state}\t{u.full_name}")
            return 0
        except IdentityError as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return 1
        finally:
            directory.close()
            trail.close()

    recovery = args.action in ("unlock", "reset-password")
    cfg = _load_with_store(args.config) if recovery else _load(args.config)[0]
    if recovery and (not args.user_id or not (args.reason or "").strip()):
        print(f"{args.action} needs --user-id and --reason", file=sys.stderr)
        return 2
    lock = StoreLock(cfg.store.path)
    anchor_after = False
    try:
        if args.action != "list":  # every action that writes to the store
            with contextlib.suppress(StoreInUse):  # in use: the service runs and reads it
                lock.acquire()  # held: the service is stopped and cannot start meanwhile
            if lock.held:
                try:
                    pre = preflight(cfg.store.path)
                except StoreRefused:
                    pre = None  # something already waits for review: no anchor over it
                anchor_after = (
                    pre is not None
                    and pre.newest is not None
                    and pre.newest.kind in CLOSING_KINDS
                    and not (pre.unanchored_audit or pre.unanchored_blocks)
                )
        code = act(cfg)
        if code == 0 and anchor_after and write_anchor(cfg.store.path, "cli") is None:
            print("the change is recorded, but its anchor could not be written (see the log)")
            return 1
        return code
    except LockUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        lock.release()


def _store_command(
    sub: argparse._SubParsersAction[Any],
    name: str,
    help_text: str,
    fn: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    # The commands that work on the store the config names.
    p = sub.add_parser(name, help=help_text)
    p.add_argument("--config", required=True, help="plant TOML file (names the store)")
    p.set_defaults(fn=fn)
    return p


class _Parser(argparse.ArgumentParser):
    """No abbreviated flags, in every subcommand: ``--conf`` is an error, not ``--config``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `gmp-edge` command."""
    parser = _Parser(prog="gmp-edge", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    p: argparse.ArgumentParser = sub.add_parser(
        "run", help="collect from real devices and serve the API"
    )
    p.add_argument("--config", required=True, help="plant TOML file")
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser("simulate", help="run only the simulated plant")
    p.add_argument("--config", required=True, help="plant TOML file with a [simulation] spec")
    p.set_defaults(fn=cmd_simulate)
    p = sub.add_parser("check-config", help="validate a config and print the polling plan")
    p.add_argument("config", help="plant TOML file")
    p.set_defaults(fn=cmd_check)
    p = _store_command(sub, "audit", "verify, list or export the audit trail", cmd_audit)
    p.add_argument("action", choices=["verify", "list", "export"])
    p.add_argument("--format", choices=["csv", "json"], default="csv", help="export format")
    p.add_argument("--record-type", help="list: only this record type")
    p.add_argument("--record-id", help="list: only this record")
    p.add_argument("--actor", help="list: only this user")
    p.add_argument("--expect-head", help="verify: the anchored head hash to compare with")
    p = _store_command(
        sub,
        "verify",
        "check the whole record: SQLite, audit chain, seal ledger and signed anchors",
        cmd_verify,
    )
    p.add_argument("--fingerprint", help="the box key's fingerprint as recorded at validation")
    p.add_argument(
        "--accept-tail",
        metavar="REASON",
        help="record that entries written after a clean stop were reviewed (administrator)",
    )
    p.add_argument("--by", help="--accept-tail: the administrator's user id")
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    p = _store_command(
        sub,
        "users",
        "create the first administrator, list users, unlock or reset an account",
        cmd_users,
    )
    p.add_argument("action", choices=["create-admin", "list", "unlock", "reset-password"])
    p.add_argument("--user-id", help="create-admin, unlock, reset-password: the user id")
    p.add_argument("--name", help="create-admin: printed name (appears in signatures)")
    p.add_argument("--reason", help="unlock, reset-password: why (recorded in the audit trail)")
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    p = sub.add_parser("reconcile", help="compare InfluxDB with the local record")
    p.add_argument("--config", required=True, help="plant TOML file")
    p.add_argument("--batch", help="the batch's window and scope (rooms, equipment)")
    p.add_argument("--start", help="ISO 8601 with zone (instead of --batch)")
    p.add_argument("--end", help="ISO 8601 with zone (default now)")
    p.set_defaults(fn=cmd_reconcile)
    p = _store_command(
        sub, "segments", "fold readings into review segments, or check them", cmd_segments
    )
    p.add_argument("action", choices=["index", "check", "rebuild"])
    p.add_argument("--start", help="check: ISO 8601 with zone (default: all time)")
    p.add_argument("--end", help="check: ISO 8601 with zone")
    p = sub.add_parser("evidence", help="export or verify a batch evidence package")
    p.add_argument("action", choices=["export", "verify"])
    p.add_argument("file", help="the package (.zip)")
    p.add_argument("--config", help="export: plant TOML file")
    p.add_argument("--batch", help="export: the batch id")
    p.add_argument("--fingerprint", help="verify: the edge box's expected key fingerprint")
    p.set_defaults(fn=cmd_evidence)
    p = sub.add_parser("demo", help="simulated plant + collection + API on 127.0.0.1")
    p.add_argument("--config", default="examples/plant.toml", help="plant TOML file")
    p.set_defaults(fn=cmd_demo)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    # asyncua logs tracebacks for every lost connection; the driver reports them in its status
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    try:
        return int(args.fn(args))
    except MissingSecret as exc:  # a secret the configuration names is not in the environment
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
