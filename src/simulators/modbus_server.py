"""``python -m simulators.modbus_server --spec FILE``: run only the Modbus TCP endpoints.

The server itself lives in :mod:`simulators.modbus_tcp`; this module is the entry point.
"""

import sys

from simulators.runner import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m simulators.modbus_server", modbus=True, opcua=False))
