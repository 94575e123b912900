#!/usr/bin/env bash
# A walk-through of Weir's collection API against a running gateway
# (`bash scripts/run.sh`, the README's run command): create a
# project, send an event and a batch, and read the inferred schema back.
# Needs curl and python3 (to read JSON).
set -euo pipefail
WEIR=${WEIR:-http://127.0.0.1:9999}
project=${1:-demo_$RANDOM}

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

echo "1. Create the project '$project' (allowed from loopback when no lock_key is set):"
keys=$(curl -sf -X POST "$WEIR/project/create" -d "{\"name\": \"$project\"}")
echo "   $keys"
write_key=$(echo "$keys" | json '["write_key"]')
read_key=$(echo "$keys" | json '["read_key"]')

echo "2. Send one event; the answer 1 means it is durably stored:"
curl -sf -X POST "$WEIR/event/collect" -d "{
  \"collection\": \"PageView\",
  \"api\": {\"api_key\": \"$write_key\"},
  \"properties\": {\"_user\": \"u1\", \"pageUrl\": \"/pricing\", \"loadMs\": 231, \"_time\": \"2024-05-01T10:00:00Z\"}
}"; echo

echo "3. Send a batch of two events into two collections:"
curl -sf -X POST "$WEIR/event/batch" -d "{
  \"api\": {\"api_key\": \"$write_key\"},
  \"events\": [
    {\"collection\": \"pageview\", \"properties\": {\"_user\": \"u2\", \"pageUrl\": \"/\", \"referrer\": \"news\"}},
    {\"collection\": \"signup\", \"properties\": {\"_user\": \"u2\", \"plan\": \"pro\", \"seats\": 3, \"trial\": true}}
  ]
}"; echo

echo "4. Read the schema back (names are snake_case, types inferred):"
curl -sf -X POST "$WEIR/project/schema" -H "read_key: $read_key" | python3 -m json.tool
