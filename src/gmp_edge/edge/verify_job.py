"""The integrity check's child process: ``python -m gmp_edge.edge.verify_job STORE
[--through N --scrub-from N --budget READINGS]``.

Prints one JSON object (``problems``, ``summary``, and the scrub's ``checked_through`` and
``scrub_next``) and exits 0 whatever it found; a non-zero exit means the check itself could
not run. It lowers its own priority first, so collection
and the API keep the CPU they need.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from gmp_edge.integrity.check import Scrub
from gmp_edge.services.integrity import verify_store

NICENESS = 10


def main(argv: list[str]) -> int:
    """Check the store named in ``argv`` and print the verdict as JSON."""
    p = argparse.ArgumentParser(prog="python -m gmp_edge.edge.verify_job")
    p.add_argument("store", type=Path)
    p.add_argument("--through", type=int, default=None, help="seal head the last check reached")
    p.add_argument("--scrub-from", type=int, default=1, help="where this check's scrub starts")
    p.add_argument("--budget", type=int, default=None, help="readings to scrub (none: all)")
    args = p.parse_args(argv)
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    scrub = None if args.budget is None else Scrub(args.through, args.scrub_from, args.budget)
    verdict = verify_store(args.store, scrub=scrub)
    print(
        json.dumps(
            {
                "problems": verdict.problems(),
                "summary": verdict.summary(),
                "checked_through": verdict.checked_through,
                "scrub_next": verdict.scrub_next,
                "readings": verdict.ledger.readings if verdict.ledger else 0,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
