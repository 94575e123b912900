"""A Presto-protocol server for the engine's tests: PyPI's buenavista 0.5.0
(Presto's HTTP protocol in front of DuckDB), on 127.0.0.1 and the port
given, over an in-memory DuckDB whose catalog is `memory`.

As shipped, buenavista 0.5.0 answers every query with an error and gets
parts of the protocol wrong. Its server bugs are patched here; no result
is changed:

1. `QueryResult` declares `partialCancelUri`, `columns`, `data`,
   `updateType` and `updateCount` without defaults, so building any answer
   failed validation: they default to null.
2. `warnings` is answered as null; the protocol has an array: `[]`.
3. Errors lack `errorName`, `errorType` and `failureInfo`: they are added
   (`GENERIC_USER_ERROR`, `USER_ERROR`, and the message).
4. Column types are labelled from a coarse mapping: doubles as `real`,
   booleans as `bool`, zoned timestamps as `timestamp`, every decimal as
   `decimal(38, 0)`, and arrays had no label at all (the answer failed).
   Labels are taken from the Arrow type DuckDB answered; values are
   converted by buenavista's own converters, unchanged.
5. It never pages: every row comes in the first answer. Answers of more
   than 1,000 rows are split into pages behind `nextUri`; `DELETE` on a
   `nextUri` or `/v1/query/{id}` forgets the rest.
6. States are `COMPLETE` and `ERROR`; Trino's are `FINISHED` and `FAILED`.
"""

import json
import sys
import uuid
from typing import Any, List, Optional

import duckdb
import pyarrow as pa
import uvicorn
from fastapi import FastAPI, Request, Response
from pydantic import HttpUrl

from buenavista.backends.duckdb import DuckDBConnection
from buenavista.examples.duckdb_http import rewriter
from buenavista.http import main, schemas, type_mapping

PAGE_ROWS = 1000


# 1. Defaults for the optional fields of an answer.
class QueryResult(schemas.BaseResult):
    partial_cancel_uri: Optional[HttpUrl] = None
    columns: Optional[List[schemas.Column]] = None
    data: Optional[List[List[Any]]] = None
    update_type: Optional[str] = None
    update_count: Optional[int] = None


schemas.QueryResult = QueryResult


# 4. Type labels from the Arrow types.
def label(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t):
        return "tinyint"
    if pa.types.is_int16(t):
        return "smallint"
    if pa.types.is_int32(t):
        return "integer"
    if pa.types.is_integer(t):
        return "bigint"
    if pa.types.is_float32(t):
        return "real"
    if pa.types.is_floating(t):
        return "double"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        unit = {"s": 0, "ms": 3, "us": 6, "ns": 9}[t.unit]
        return f"timestamp({unit}) with time zone" if t.tz else f"timestamp({unit})"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_binary(t):
        return "varbinary"
    if pa.types.is_list(t):
        return f"array({label(t.value_type)})"
    if pa.types.is_map(t):
        return f"map({label(t.key_type)}, {label(t.item_type)})"
    return "varchar"


def signature(name: str) -> schemas.ClientTypeSignature:
    raw = name.split("(")[0]
    return schemas.ClientTypeSignature(raw_type=raw, arguments=[])


original_convert = main._convert_query_result


def convert_query_result(qr):
    if qr.column_count() == 0 or qr.rbr is None:
        return original_convert(qr)
    cols, converters = [], []
    for i, field in enumerate(qr.rbr.schema):
        name, bvtype = qr.column(i)
        cols.append(schemas.Column(name=name, type=label(field.type), type_signature=signature(label(field.type))))
        converters.append(type_mapping.type_converter(bvtype))
    data = [[converters[i](v) for i, v in enumerate(r)] for r in qr.rows()]
    return cols, data, None


main._convert_query_result = convert_query_result

# 2, 3, 5 and 6: the answers as the protocol has them, in pages.
pages = {}
app = FastAPI()


def page_uri(request: Request, id: str, token: int) -> str:
    return f"{request.base_url}v1/statement/executing/{id}/{token}"


def answer_page(request: Request, id: str, token: int) -> dict:
    state = pages[id]
    rows = state["rows"][token * PAGE_ROWS:(token + 1) * PAGE_ROWS]
    body = dict(state["body"], data=rows or None, warnings=[])
    if (token + 1) * PAGE_ROWS < len(state["rows"]):
        body["nextUri"] = page_uri(request, id, token + 1)
        body["stats"] = dict(body["stats"], state="RUNNING")
    else:
        body.pop("nextUri", None)
        body["stats"] = dict(body["stats"], state="FINISHED")
        pages.pop(id, None)
    return body


@app.middleware("http")
async def protocol(request: Request, call_next):
    response = await call_next(request)
    if not (request.method == "POST" and request.url.path == "/v1/statement"):
        return response
    raw = b"".join([chunk async for chunk in response.body_iterator])
    body = json.loads(raw)
    body["warnings"] = body.get("warnings") or []
    stats = body.get("stats") or {}
    stats["state"] = {"COMPLETE": "FINISHED", "ERROR": "FAILED"}.get(stats.get("state"), stats.get("state"))
    body["stats"] = stats
    error = body.get("error")
    if error:
        error.setdefault("errorName", "GENERIC_USER_ERROR")
        error["errorName"] = error["errorName"] or "GENERIC_USER_ERROR"
        error["errorType"] = error.get("errorType") or "USER_ERROR"
        error["failureInfo"] = error.get("failureInfo") or {
            "type": "buenavista", "message": error.get("message"), "suppressed": [], "stack": []}
    elif body.get("data") and len(body["data"]) > PAGE_ROWS:
        id = f"{body['id']}_{uuid.uuid4().hex[:8]}"
        body["id"] = id
        pages[id] = {"rows": body.pop("data"), "body": body}
        body = answer_page(request, id, 0)
    headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
    return Response(content=json.dumps(body), status_code=response.status_code, headers=headers,
                    media_type="application/json")


@app.get("/v1/statement/executing/{id}/{token}")
async def next_page(request: Request, id: str, token: int):
    if id not in pages:
        return Response(status_code=404)
    return answer_page(request, id, token)


@app.delete("/v1/statement/executing/{id}/{token}")
@app.delete("/v1/query/{id}")
async def cancel(id: str, token: Optional[int] = None):
    pages.pop(id, None)
    return Response(status_code=204)


if __name__ == "__main__":
    port = int(sys.argv[1])
    main.quacko(app, DuckDBConnection(duckdb.connect()), rewriter)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
