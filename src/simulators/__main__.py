"""``python -m simulators --spec FILE``: run every Modbus endpoint and OPC UA press."""

import sys

from simulators.runner import main

sys.exit(main(prog="python -m simulators"))
