#!/usr/bin/env bash
# Installs what the tests need and runs the whole suite: formatting, lints, unit tests and the
# integration tests that drive the real binary with real OpenSSH (sshd as the target, ssh as
# the person). Needs root (or sudo) on Debian/Ubuntu: it installs openssh-server and creates
# the local login `kwtest` that the test sshd lets the gateway into, and builds Garage (the
# S3-compatible server the archive tests store recordings in) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "scripts/test.sh: needs root or sudo (it installs openssh-server and adds the user kwtest)" >&2; exit 1; }
  SUDO="sudo"
fi

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null && command -v ssh-keygen >/dev/null && command -v sftp >/dev/null || missing+=(openssh-client)
command -v rsync >/dev/null || missing+=(rsync)
# Password prompts the secrets test types at (sudo, mysql -p).
command -v sudo >/dev/null || missing+=(sudo)
command -v mysql >/dev/null || missing+=(mariadb-client)
# The web console: xterm.js and playwright-core come from npm; the e2e test drives Debian's chromium.
[ -x /usr/bin/chromium ] || missing+=(chromium)
# A real load balancer in front of the gateway (the PROXY protocol test).
[ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v curl >/dev/null || missing+=(curl)
# Prometheus' promtool checks what GET /metrics serves.
command -v promtool >/dev/null || missing+=(prometheus)
# The PostgreSQL front end's tests: psql as the person, and a PostgreSQL server of each test's
# own (initdb, pg_ctl) behind the gateway, with TLS from a CA openssl makes.
command -v psql >/dev/null || missing+=(postgresql-client)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v openssl >/dev/null || missing+=(openssl)
# The event feed's tests: Debian's rsyslogd as the syslog receiver (UDP, TCP, and TLS through
# its gnutls driver).
[ -x /usr/sbin/rsyslogd ] || missing+=(rsyslog)
compgen -G "/usr/lib/*/rsyslog/lmnsd_gtls.so" >/dev/null || missing+=(rsyslog-gnutls)
# Drivers through the PostgreSQL front end: JDBC (Debian's) on the machine's Java; psycopg below.
[ -f /usr/share/java/postgresql.jar ] || missing+=(libpostgresql-jdbc-java)
command -v java >/dev/null || missing+=(default-jre-headless)
command -v python3 >/dev/null || missing+=(python3 python3-venv)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "scripts/test.sh: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi
if ! id kwtest >/dev/null 2>&1; then
  echo "scripts/test.sh: adding the local user kwtest (the tests' target login)"
  $SUDO useradd -m -s /bin/bash kwtest
  echo 'kwtest:kwtest-pass-1' | $SUDO chpasswd
fi
$SUDO mkdir -p /run/sshd
# A real S3-compatible server for the archive tests: Garage, built from crates.io once
# (about 9 minutes on 2 cores; the tests look on PATH and in cargo's bin directory).
if ! command -v garage >/dev/null && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/garage" ]; then
  echo "scripts/test.sh: installing Garage (cargo install --locked garage)"
  CARGO_INCREMENTAL=0 cargo install --locked garage
fi
(cd web && npm ci --no-audit --no-fund)
# From PyPI, in a virtualenv of the tests' own: psycopg (the driver test) and schemathesis
# (it::openapi runs it against the server to hold the OpenAPI document to what it answers).
venv="${KEEPWATCH_TEST_VENV:-$HOME/.cache/keepwatch/venv}"
if ! "$venv/bin/python" -c 'import psycopg, schemathesis' 2>/dev/null; then
  echo "scripts/test.sh: installing psycopg and schemathesis into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'psycopg[binary]' 'schemathesis==4.32.5'
fi
export KEEPWATCH_TEST_PYTHON="$venv/bin/python"

