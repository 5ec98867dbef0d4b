"""``python -m evidence verify FILE [--fingerprint HEX]``."""

from __future__ import annotations

import sys

from evidence.verify import main

sys.exit(main())
