"""Times the analytics benchmark's queries on DuckDB over the same Parquet
files. Input (stdin): {"tables": {name: [files]}, "queries": [sql], "runs": n}.
Output (stdout): {"seconds": [best time per query], "rows": [row counts]}."""
import json
import sys
import time

import duckdb

spec = json.load(sys.stdin)
con = duckdb.connect()
con.execute("SET threads TO 2")
for name, files in spec["tables"].items():
    con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({json.dumps(files)}, union_by_name = true)")
seconds, rows = [], []
for sql in spec["queries"]:
    best = None
    for _ in range(spec["runs"]):
        start = time.perf_counter()
        result = con.execute(sql).fetchall()
        took = time.perf_counter() - start
        best = took if best is None else min(best, took)
    seconds.append(best)
    rows.append(len(result))
print(json.dumps({"seconds": seconds, "rows": rows}))
