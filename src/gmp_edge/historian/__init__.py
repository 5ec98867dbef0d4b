"""The durable original record on the edge box: readings, gap ledger, outbox.

Evaluates no limits; later forwarders drain the outbox to InfluxDB and MQTT.
"""
