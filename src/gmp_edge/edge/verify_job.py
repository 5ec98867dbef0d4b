"""The integrity check's child process: ``python -m gmp_edge.edge.verify_job STORE``.

Prints one JSON object (``problems``, ``summary``) and exits 0 whatever it found; a non-zero
exit means the check itself could not run. It lowers its own priority first, so collection
and the API keep the CPU they need.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from gmp_edge.services.integrity import verify_store

NICENESS = 10


def main(argv: list[str]) -> int:
    """Check the store named in ``argv`` and print the verdict as JSON."""
    if len(argv) != 1:
        print("usage: python -m gmp_edge.edge.verify_job STORE", file=sys.stderr)
        return 2
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    verdict = verify_store(Path(argv[0]))
    print(json.dumps({"problems": verdict.problems(), "summary": verdict.summary()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
