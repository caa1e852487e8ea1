#!/usr/bin/env bash
# System packages the test suite and benchmarks use (Debian). Idempotent; needs root or sudo.
set -euo pipefail
need=()
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
# The other official SDKs' test suites (tests/sdk): Go builds Baidu's Go SDK from
# source ($BCE_SDK_GO), Node runs the JavaScript SDK (npm ci in tests/sdk/js).
command -v go >/dev/null 2>&1 || need+=(golang-go)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# A C compiler and Python's headers: setup.py compiles the request path with mypyc.
command -v cc >/dev/null 2>&1 || need+=(gcc)
python3 -c 'import os, sysconfig; exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' \
  || need+=(python3-dev)
# PostgreSQL server binaries (initdb, pg_ctl): the tests start their own throw-away
# server (tests/postgres/cluster.py); Debian keeps them in /usr/lib/postgresql/*/bin.
pg_installed=yes
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  need+=(postgresql)
  pg_installed=no
fi
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The package may have started its default cluster; the tests do not use it.
if [ "$pg_installed" = no ] && command -v pg_lsclusters >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  pg_lsclusters --no-header 2>/dev/null | while read -r version cluster _; do
    $SUDO pg_ctlcluster "$version" "$cluster" stop >/dev/null 2>&1 || true
  done
fi
