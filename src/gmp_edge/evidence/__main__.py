"""``python -m gmp_edge.evidence verify FILE [--fingerprint HEX]``."""

from __future__ import annotations

import sys

from gmp_edge.evidence.verify import main

sys.exit(main())
