"""``python -m gmp_edge.simulators --spec FILE``: run every Modbus endpoint and OPC UA press."""

import sys

from gmp_edge.simulators.runner import main

sys.exit(main(prog="python -m gmp_edge.simulators"))
