"""Drives the gateway's Trino endpoint with the Python clients from PyPI:
`trino` (DB-API and SQLAlchemy) and `presto-python-client`.

Arguments: the gateway's base URL, the project, its read key, another
project's name. Prints one JSON object of what each call answered, for the
test to check.
"""

import datetime
import decimal
import json
import sys
import threading
import time
from urllib.parse import urlparse

import prestodb
import sqlalchemy as sa
import trino
from trino.auth import BasicAuthentication

base, project, read_key, other = sys.argv[1:5]
url = urlparse(base)
host, port = url.hostname, url.port
out = {}


def plain(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return "bytes:" + value.hex()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def connect(**extra):
    return trino.dbapi.connect(
        host=host, port=port, user="analyst", catalog="weir", schema=project, http_scheme="http",
        auth=BasicAuthentication("analyst", read_key), allow_insecure_auth=True, **extra)


def rows(cursor, sql, params=None):
    cursor.execute(sql, params) if params is not None else cursor.execute(sql)
    return plain(cursor.fetchall())


def error(cursor, sql):
    try:
        cursor.execute(sql)
        cursor.fetchall()
        return None
    except trino.exceptions.TrinoQueryError as e:
        return {"name": e.error_name, "type": e.error_type, "message": e.message,
                "location": list(e.error_location) if e.error_location else None}


conn = connect()
cur = conn.cursor()
out["rows"] = rows(cur, "SELECT url, n, tags, _time FROM pageview ORDER BY url")
out["description"] = [[d[0], d[1]] for d in cur.description]
out["typed"] = rows(cur, "SELECT CAST(1.25 AS DECIMAL(10,2)), DATE '2024-02-03', "
                         "CAST('2024-02-03 04:05:06.789' AS TIMESTAMP), X'6869'")
out["typed_description"] = [d[1] for d in cur.description]
out["qualified"] = rows(cur, f"SELECT count(*) FROM weir.{project}.pageview JOIN {project}.click ON true")
out["params"] = rows(cur, "SELECT url FROM pageview WHERE url = ? AND n > ? ORDER BY url", ["/b", 1])
out["params_quoted"] = rows(cur, "SELECT ?, ?", ["it's", None])
legacy = connect(legacy_prepared_statements=True).cursor()
out["legacy_params"] = rows(legacy, "SELECT url FROM pageview WHERE n < ? ORDER BY url", [2])
out["show_tables"] = rows(cur, "SHOW TABLES")
out["show_schemas"] = rows(cur, "SHOW SCHEMAS")
out["show_catalogs"] = rows(cur, "SHOW CATALOGS")
out["describe"] = rows(cur, "DESCRIBE pageview")
out["show_columns"] = rows(cur, "SHOW COLUMNS FROM click")
out["information_tables"] = rows(cur, "SELECT table_schema, table_name, table_type FROM information_schema.tables "
                                      "ORDER BY 1, 2")
out["jdbc_tables"] = rows(cur, "SELECT table_name, table_type FROM system.jdbc.tables WHERE table_schem = ? "
                               "ORDER BY table_name", [project])
out["jdbc_columns"] = rows(cur, "SELECT column_name, type_name, data_type FROM system.jdbc.columns "
                                "WHERE table_name = 'click' ORDER BY ordinal_position")
cur.execute("USE weir.information_schema")
cur.fetchall()
out["use_schema"] = cur._request._client_session.schema
out["errors"] = {
    "syntax": error(cur, "SELEC 1"),
    "missing_table": error(cur, "SELECT * FROM nope"),
    "missing_column": error(cur, "SELECT nope FROM pageview"),
    "other_project": error(cur, f"SELECT * FROM weir.{other}.pageview"),
    "other_schema": error(cur, f"SELECT * FROM {other}.pageview"),
    "other_show": error(cur, f"SHOW TABLES FROM {other}"),
    "other_use": error(cur, f"USE {other}"),
    "other_catalog": error(cur, "SHOW SCHEMAS FROM system"),
    "describe_missing": error(cur, "DESCRIBE nope"),
    "not_a_query": error(cur, "DROP TABLE pageview"),
}

# Cancelling: a statement that would run for minutes, cancelled from
# another thread; the project's only query slot is free again at once.
slow_cursor = connect().cursor()
ten = "(SELECT x FROM (VALUES (1),(2),(3),(4),(5),(6),(7),(8),(9),(10)) t(x))"
slow = "SELECT sum(a.x * b.x + c.x * d.x + e.x * f.x + g.x * h.x + i.x) FROM " + ", ".join(
    f"{ten} {n}" for n in "abcdefghi")
outcome = {}


def run_slow():
    try:
        slow_cursor.execute(slow)
        outcome["rows"] = slow_cursor.fetchall()
    except Exception as e:  # the client's error for a cancelled statement
        outcome["error"] = type(e).__name__ + ": " + str(e)


worker = threading.Thread(target=run_slow)
worker.start()
time.sleep(1.5)
slow_cursor.cancel()
worker.join(60)
started = time.monotonic()
after = rows(connect().cursor(), "SELECT 1")
out["cancel"] = {"outcome": outcome, "after": after, "after_seconds": time.monotonic() - started,
                 "worker_done": not worker.is_alive()}

engine = sa.create_engine(
    f"trino://analyst@{host}:{port}/weir/{project}",
    connect_args={"auth": BasicAuthentication("analyst", read_key), "http_scheme": "http",
                  "allow_insecure_auth": True})
inspector = sa.inspect(engine)
out["sqlalchemy"] = {
    "schemas": inspector.get_schema_names(),
    "tables": inspector.get_table_names(),
    "columns": [[c["name"], str(c["type"]), c["nullable"], c["comment"]] for c in inspector.get_columns("pageview")],
    "has_click": inspector.has_table("click"),
    "has_nope": inspector.has_table("nope"),
    "has_other": inspector.has_table("pageview", schema=other),
    "comment": inspector.get_table_comment("pageview"),
}
with engine.connect() as c:
    table = sa.Table("pageview", sa.MetaData(), autoload_with=c)
    query = sa.select(table.c.url, table.c.n).where(table.c.n > sa.bindparam("least")).order_by(table.c.url)
    out["sqlalchemy"]["select"] = plain([list(r) for r in c.execute(query, {"least": 1.6})])

presto = prestodb.dbapi.connect(host=host, port=port, user="analyst", catalog="weir", schema=project,
                                http_scheme="http", http_headers={"read_key": read_key})
pcur = presto.cursor()
pcur.execute("SELECT url, n FROM pageview ORDER BY url")
out["presto"] = {"rows": plain(pcur.fetchall()), "description": [[d[0], d[1]] for d in pcur.description]}
try:
    pcur = presto.cursor()
    pcur.execute(f"SELECT * FROM weir.{other}.pageview")
    pcur.fetchall()
    out["presto"]["other"] = None
except prestodb.exceptions.PrestoUserError as e:
    out["presto"]["other"] = e.error_name

print(json.dumps(out))
