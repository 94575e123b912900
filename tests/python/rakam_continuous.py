"""Drives the gateway's continuous queries and real-time reports with
Rakam's own Python client (`rakam-client` 0.5, `ContinuousqueryApi` and
`RealtimeApi`); prints one JSON object of what each call answered, for the
test to check.

    rakam_continuous.py <gateway URL> <read key> <master key> <window start, epoch seconds>
"""

import datetime
import json
import sys

from rakam_client import ApiClient, Configuration
from rakam_client.apis.continuousquery_api import ContinuousqueryApi
from rakam_client.apis.realtime_api import RealtimeApi
from rakam_client.models import (
    ContinuousQuery,
    ContinuousQueryDeleteQuery,
    ContinuousQueryGetQuery,
    ContinuousQueryTestQuery,
    Measure,
    RealtimeDeleteTable,
    RealtimeQueryTable,
    RealTimeReport,
)
from rakam_client.rest import ApiException

base, read_key, master_key, start = sys.argv[1:5]
config = Configuration()
config.api_key["read_key"] = read_key
config.api_key["master_key"] = master_key
client = ApiClient(host=base)
queries = ContinuousqueryApi(client)
realtime = RealtimeApi(client)
out = {}

query = ContinuousQuery(
    table_name="per_url",
    name="Per URL",
    query="SELECT url, count(*) AS n FROM pageview GROUP BY url",
    partition_keys=[],
    options={},
)
try:
    out["create"] = queries.create_query(continuous_query=query).success
except ApiException as e:
    sys.exit(f"create: {e.status} {e.body}")
try:
    queries.create_query(continuous_query=query)
    out["duplicate"] = 200
except ApiException as e:
    out["duplicate"] = e.status
# The client reads `tableName`, which Rakam's server never wrote.
out["list"] = [q.query for q in queries.list_queries()]
out["get"] = queries.get_query(continuous_query_get_query=ContinuousQueryGetQuery(table_name="per_url")).query
out["test"] = queries.test_query(continuous_query_test_query=ContinuousQueryTestQuery(query="SELECT url, count(*) AS n FROM pageview GROUP BY url"))
try:
    queries.test_query(continuous_query_test_query=ContinuousQueryTestQuery(query="SELECT * FROM pageview"))
    out["test_wildcard"] = 200
except ApiException as e:
    out["test_wildcard"] = e.status
out["delete"] = queries.delete_query(continuous_query_delete_query=ContinuousQueryDeleteQuery(table_name="per_url")).success

report = RealTimeReport(
    name="Views",
    table_name="views",
    measures=[Measure(column="url", aggregation="COUNT")],
    collections=["pageview"],
    dimensions=[],
)
out["report"] = realtime.create_table(real_time_report=report).success
out["reports"] = [r.name for r in realtime.list_tables()]
begin = datetime.datetime.fromtimestamp(int(start), datetime.timezone.utc).replace(tzinfo=None)
answer = realtime.query_table(
    realtime_query_table=RealtimeQueryTable(
        table_name="views",
        measure=Measure(column="url", aggregation="COUNT"),
        aggregate=True,
        dimensions=[],
        date_start=begin,
        date_end=begin + datetime.timedelta(seconds=60),
    )
)
out["views"] = answer.result
out["drop"] = realtime.delete_table(realtime_delete_table=RealtimeDeleteTable(table_name="views")).success
print(json.dumps(out))
