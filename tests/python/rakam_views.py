"""Drives the gateway's materialized views with Rakam's own Python client
(`rakam-client` 0.5, `MaterializedViewApi`); prints one JSON object of what
each call answered, for the test to check.

    rakam_views.py <gateway URL> <read key> <master key>
"""

import json
import sys

from rakam_client import ApiClient, Configuration
from rakam_client.apis.materializedview_api import MaterializedviewApi
from rakam_client.models import (
    MaterializedView,
    MaterializedViewDeleteView,
    MaterializedViewGetSchemaOfView,
    MaterializedViewGetView,
)
from rakam_client.rest import ApiException

base, read_key, master_key = sys.argv[1:4]
config = Configuration()
config.api_key["read_key"] = read_key
config.api_key["master_key"] = master_key
api = MaterializedviewApi(ApiClient(host=base))
out = {}

view = MaterializedView(
    table_name="by_url",
    name="By URL",
    query="SELECT url, count(*) AS hits FROM pageview GROUP BY url",
    update_interval="PT1H",
    incremental=False,
)
out["create"] = api.create_view(materialized_view=view).success
try:
    api.create_view(materialized_view=view)
    out["duplicate"] = 200
except ApiException as e:
    out["duplicate"] = e.status
out["list"] = [[v.table_name, v.name, v.update_interval, v.incremental] for v in api.list_views()]
got = api.get_view(materialized_view_get_view=MaterializedViewGetView(table_name="by_url"))
out["get"] = got.query
schema = api.get_schema_of_view(materialized_view_get_schema_of_view=MaterializedViewGetSchemaOfView(names=["by_url"]))
out["schema"] = [[s.name, [f.name for f in s.fields]] for s in schema]
try:
    api.get_view(materialized_view_get_view=MaterializedViewGetView(table_name="nope"))
    out["missing"] = 200
except ApiException as e:
    out["missing"] = e.status
out["delete"] = api.delete_view(materialized_view_delete_view=MaterializedViewDeleteView(table_name="by_url")).success
out["after_delete"] = [v.table_name for v in api.list_views()]
print(json.dumps(out))
