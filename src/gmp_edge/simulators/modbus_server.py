"""``python -m gmp_edge.simulators.modbus_server --spec FILE``: run only the Modbus TCP endpoints.

The server itself lives in :mod:`gmp_edge.simulators.modbus_tcp`; this module is the entry point.
"""

import sys

from gmp_edge.simulators.runner import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m gmp_edge.simulators.modbus_server", modbus=True, opcua=False))
