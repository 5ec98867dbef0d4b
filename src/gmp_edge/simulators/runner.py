"""Command-line runner shared by the three entry points.

Prints ONE JSON line to stdout when every server listens -
``{"ready": true, "modbus": {...}, "opcua": {...}}`` - then logs to stderr and runs until
SIGINT or SIGTERM, shutting down cleanly. Exit codes: 0 clean stop, 1 start-up failure,
2 bad spec or arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence

from gmp_edge.simulators.plant import SimulatedPlant
from gmp_edge.simulators.spec import PlantSpec, SpecError, load_spec

log = logging.getLogger("simulators")


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str = "python -m gmp_edge.simulators",
    modbus: bool = True,
    opcua: bool = True,
) -> int:
    """Parse arguments, load the spec and serve until a signal arrives."""
    what = " and ".join(k for k, on in (("Modbus TCP", modbus), ("OPC UA", opcua)) if on)
    parser = argparse.ArgumentParser(prog=prog, description=f"Run simulated {what} devices.")
    parser.add_argument("--spec", required=True, help="simulator spec (TOML)")
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="stderr log level (default INFO)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("asyncua").setLevel(logging.WARNING)  # very chatty at INFO
    # Expected with the NoSecurity policy we choose; warning about it on every start is noise.
    logging.getLogger("asyncua.server.server").setLevel(logging.ERROR)
    try:
        spec = load_spec(args.spec)
    except SpecError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(spec, modbus=modbus, opcua=opcua))
    except OSError as exc:  # typically: port already in use
        log.error("cannot start: %s", exc)
        return 1
    return 0


async def _serve(spec: PlantSpec, *, modbus: bool, opcua: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with SimulatedPlant(spec, modbus=modbus, opcua=opcua) as plant:
        sys.stdout.write(json.dumps(plant.ready_info()) + "\n")
        sys.stdout.flush()
        log.info("simulators ready: %s", json.dumps(plant.ready_info()))
        await stop.wait()
        log.info("signal received, shutting down")
    log.info("stopped")
