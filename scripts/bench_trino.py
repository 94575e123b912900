"""The Trino benchmark (see BENCHMARKS.md, "Trino protocol and Presto engine").

Prints, from one run of the release binary:

- a 1,000,000-row answer read by the Python `trino` client through
  `/v1/statement`, and through `/query/execute` (JSON parsed in Python),
  rows/s, beside DuckDB reading the same Parquet files into Python rows;
- one aggregate over 10,000,000 events on DataFusion (`/query/execute`), and
  through the Presto engine against buenavista (DuckDB behind the Presto
  protocol, `tests/python/presto_server.py`) over the same files.

Run (with the test venv, which has trino, duckdb and buenavista):
  cargo build --release -p weir-gateway --bin weir
  ~/.cache/weir-venv/bin/python scripts/bench_trino.py [ROWS] [EVENTS]
"""

import base64
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import duckdb
import trino
from trino.auth import BasicAuthentication

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
binary = os.path.join(target, "release", "weir")
rows_wanted = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
events_wanted = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000_000
AGGREGATE = ("SELECT url, count(*) AS c, avg(n) AS mean, count(DISTINCT _user) AS users "
             "FROM events GROUP BY url ORDER BY c DESC, url LIMIT 20")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def post(base, path, body, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers=headers or {}, method="POST")
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.read()


def wait_for(url):
    for _ in range(600):
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError("no answer from " + url)


def start_gateway(data, port, extra):
    env = dict(os.environ, WEIR_DATA_DIR=data, WEIR_LISTEN=f"127.0.0.1:{port}",
               WEIR_BATCH__INTERVAL_MS="3600000", WEIR_QUERY__MAX_RESULT_BYTES=str(1 << 30),
               WEIR_QUERY__MAX_MEMORY_BYTES=str(4 << 30), WEIR_QUERY__TOTAL_MEMORY_BYTES=str(8 << 30),
               WEIR_QUERY__TIMEOUT_S="600", **extra)
    child = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(data, "bench.stderr"), "a"))
    wait_for(f"http://127.0.0.1:{port}/health")
    return child


def send(base, write_key, collection, count, make):
    """Events through /event/batch, 4 requests at a time."""
    def chunk(start):
        events = ",".join(
            '{"collection":"%s","properties":%s}' % (collection, make(i)) for i in range(start, min(start + 2000, count)))
        post(base, "/event/batch", ('{"api":{"api_key":"%s"},"events":[%s]}' % (write_key, events)).encode())
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(chunk, range(0, count, 2000)))


def best(f, runs=3):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        n = f()
        times.append(time.perf_counter() - started)
    return n, min(times)


def main():
    work = tempfile.mkdtemp(prefix="weir-bench-trino-")
    data = os.path.join(work, "data")
    os.makedirs(data)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    gateway = start_gateway(data, port, {})
    try:
        keys = json.loads(post(base, "/project/create", {"name": "bench"}))
        day = 86_400_000
        started = time.perf_counter()
        send(base, keys["write_key"], "wide", rows_wanted, lambda i: '{"url":"/p%d","n":%d,"_user":"u%d","_time":%d}' % (
            i % 1000, i % 97, i % 50_000, 1_700_000_000_000 + (i % 30) * day + i))
        send(base, keys["write_key"], "events", events_wanted, lambda i: '{"url":"/p%d","n":%d,"_user":"u%d","_time":%d}' % (
            (i * 7919) % 5000, i % 89, (i * 31) % 200_000, 1_700_000_000_000 + (i % 30) * day + i))
        post(base, "/event/bulk/commit?master_key=" + keys["master_key"], b"{}")
        print(f"loaded {rows_wanted + events_wanted} events in {time.perf_counter() - started:.1f} s")

        sql = "SELECT url, n, _user, _time FROM wide"
        conn = trino.dbapi.connect(host="127.0.0.1", port=port, user="bench", catalog="weir", schema="bench",
                                   http_scheme="http", auth=BasicAuthentication("bench", keys["read_key"]),
                                   allow_insecure_auth=True)

        def via_trino():
            cur = conn.cursor()
            cur.execute(sql)
            return len(cur.fetchall())

        def via_execute():
            body = post(base, "/query/execute", {"query": sql, "limit": rows_wanted},
                        {"read_key": keys["read_key"], "Content-Type": "application/json"})
            return len(json.loads(body)["result"])

        def via_pages():
            auth = "Basic " + base64.b64encode(f"bench:{keys['read_key']}".encode()).decode()
            answer = json.loads(post(base, "/v1/statement", sql.encode(), {"Authorization": auth}))
            n = 0
            while answer.get("nextUri"):
                req = urllib.request.Request(answer["nextUri"], headers={"Authorization": auth})
                with urllib.request.urlopen(req, timeout=600) as r:
                    answer = json.loads(r.read())
                n += len(answer.get("data") or [])
            return n

        files = os.path.join(data, "warehouse", "bench", "wide", "*", "*.parquet")
        duck = duckdb.connect()
        duck.execute("SET threads = 2")

        def via_duckdb():
            return len(duck.execute(f"SELECT url, n, _user, _time FROM read_parquet('{files}')").fetchall())

        rows = {}
        for name, f in [("DuckDB, same files, rows into Python", via_duckdb),
                        ("/v1/statement, Python trino client", via_trino),
                        ("/v1/statement, pages parsed with json.loads", via_pages),
                        ("/query/execute, JSON parsed in Python", via_execute)]:
            n, seconds = best(f)
            assert n == rows_wanted, (name, n)
            rows[name] = n / seconds
            print(f"{name}: {n / seconds:,.0f} rows/s ({seconds:.2f} s)")
        baseline = rows["DuckDB, same files, rows into Python"]
        for name in list(rows)[1:]:
            print(f"  {name} / DuckDB: {rows[name] / baseline:.2f}")

        def aggregate(at):
            def run():
                body = post(at, "/query/execute", {"query": AGGREGATE},
                            {"read_key": keys["read_key"], "Content-Type": "application/json"})
                answer = json.loads(body)
                assert "result" in answer, answer
                return answer["result"]
            return run

        datafusion_rows, datafusion_s = best(aggregate(base))
        print(f"aggregate over {events_wanted:,} events, DataFusion: {datafusion_s * 1000:.0f} ms")
    finally:
        gateway.terminate()
        gateway.wait()

    # The same data folder, with the Presto engine against buenavista.
    presto_port = free_port()
    server = subprocess.Popen([sys.executable, os.path.join(root, "tests", "python", "presto_server.py"),
                               str(presto_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{presto_port}/v1/info")
        gateway = start_gateway(data, port, {"WEIR_ENGINE": f"presto://bench@127.0.0.1:{presto_port}/memory",
                                             "WEIR_PRESTO__TABLE_DDL": "duckdb"})
        try:
            for _ in range(600):  # the views are made at start
                try:
                    aggregate(base)()
                    break
                except Exception:
                    time.sleep(0.5)
            presto_rows, presto_s = best(aggregate(base))
            assert presto_rows == datafusion_rows, (presto_rows, datafusion_rows)
            print(f"aggregate over {events_wanted:,} events, Presto engine on buenavista: {presto_s * 1000:.0f} ms")
            print(f"  Presto engine / DataFusion: {presto_s / datafusion_s:.2f}")
        finally:
            gateway.terminate()
            gateway.wait()
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
