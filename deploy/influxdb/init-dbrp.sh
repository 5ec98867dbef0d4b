#!/bin/sh
# Runs once, after the influxdb:2.7 image's DOCKER_INFLUXDB_INIT_MODE=setup created the org,
# bucket and admin token: map the v1 database/retention policy "gmp_edge"/"autogen" onto the
# bucket so InfluxQL (Grafana, gmp-edge queries) and the v1 /write API reach it.
set -eu
influx v1 dbrp create \
  --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --db "${DOCKER_INFLUXDB_INIT_BUCKET}" \
  --rp autogen \
  --default \
  --org "${DOCKER_INFLUXDB_INIT_ORG}" \
  --token "${DOCKER_INFLUXDB_INIT_ADMIN_TOKEN}"
