"""Drives the gateway's user API with Rakam's own Python client
(`rakam-client` 0.5, `UserApi`); prints one JSON object of what each call
answered, for the test to check.

    rakam_users.py <gateway URL> <write key> <read key> <master key>
"""

import datetime
import json
import sys

from rakam_client import ApiClient, Configuration
from rakam_client.apis.user_api import UserApi
from rakam_client.models import (
    EventFilter,
    Sorting,
    User,
    UserContext,
    UserCreateUsers,
    UserGetEvents,
    UserGetUser,
    UserIncrementProperty,
    UserSearchUsers,
    UserUnsetProperty,
)
from rakam_client.rest import ApiException

base, write_key, read_key, master_key = sys.argv[1:5]
config = Configuration()
config.api_key["read_key"] = read_key
config.api_key["write_key"] = write_key
config.api_key["master_key"] = master_key
api = UserApi(ApiClient(host=base))
context = UserContext(api_key=write_key)
out = {}

out["create"] = api.create_user(user=User(id="ann", api=context, properties={"plan": "pro", "seats": 2}))
out["set_properties"] = api.set_properties(user=User(id="bob", api=context, properties={"plan": "free"}))
out["set_properties_once"] = api.set_properties_once(
    user=User(id="ann", api=context, properties={"plan": "free", "country": "DE"})
)
increment = UserIncrementProperty(api=context, id="ann", _property="seats", value=3.0)
out["increment"] = api.increment_property(user_increment_property=increment).success
out["unset"] = api.unset_property(
    user_unset_property=UserUnsetProperty(api=context, id="bob", properties=["plan"])
).success
created = api.create_users(user_create_users=UserCreateUsers(users=[User(id="cat", properties={"plan": "team"})]))
out["create_users"] = created
ann = api.get_user(user_get_user=UserGetUser(user="ann"))
out["get"] = {"id": ann.id, "properties": ann.properties}
metadata = api.get_metadata()
out["metadata"] = {
    "identifier_column": metadata.identifier_column,
    "columns": [[c.name, c.type] for c in metadata.columns],
}
found = api.search_users(
    user_search_users=UserSearchUsers(
        columns=["id", "plan"], filter="plan IS NOT NULL", sorting=Sorting(column="id", order="asc"), limit=10
    )
)
out["search"] = {"result": found.result, "total": found.properties.get("totalResult")}
buyers = api.search_users(
    user_search_users=UserSearchUsers(
        columns=["id"], event_filters=[EventFilter(collection="purchase", filter_expression="amount > 10")]
    )
)
out["search_by_events"] = buyers.result
events = api.get_events(
    user_get_events=UserGetEvents(user="ann", limit=5, offset=datetime.datetime(2030, 1, 1))
)
out["get_events"] = [{"collection": e.collection, "properties": e.properties} for e in events]
try:
    api.get_user(user_get_user=UserGetUser(user="nobody"))
    out["missing"] = None
except ApiException as e:
    out["missing"] = e.status

print(json.dumps(out, default=str))
