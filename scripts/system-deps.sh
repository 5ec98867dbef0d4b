#!/usr/bin/env bash
# Installs the Debian packages the test suite talks to, when they are missing.
# Fails loudly: a test server that is not there is an error, never a skipped test.
set -euo pipefail
need=()
command -v mbpoll >/dev/null 2>&1 || need+=(mbpoll)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v influxd >/dev/null 2>&1 || need+=(influxdb)
command -v victoria-metrics >/dev/null 2>&1 || need+=(victoria-metrics)
command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)  # PDF pages -> images, text
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
echo "system-deps: installing ${need[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: need root to apt-get install ${need[*]} (or install them yourself)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
for c in mbpoll chromium influxd victoria-metrics mosquitto pdftoppm pdftotext; do
  command -v "$c" >/dev/null 2>&1 || { echo "system-deps: $c still missing after install" >&2; exit 1; }
done
