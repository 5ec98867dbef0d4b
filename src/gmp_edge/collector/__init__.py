"""Collection of readings from plant devices (Modbus TCP, OPC UA).

Knows nothing about limits, storage or HTTP: drivers turn device traffic into
:class:`collector.reading.Reading` batches and hand them to a sink.
"""
