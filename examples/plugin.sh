#!/usr/bin/env bash
# The plugin walk-through of sdk/plugin/README.md, step by step, against a
# running gateway: a new crate, the README's src/lib.rs, a wasm32-wasip2
# build, `weir plugin upload` and `weir plugin test`.
# Needs curl, python3, and the `weir` binary (WEIR_CMD, default `weir`).
set -euo pipefail
WEIR=${WEIR:-http://127.0.0.1:9999}
weir=${WEIR_CMD:-weir}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
MASTER=$(curl -sf -X POST "$WEIR/project/create" -d "{\"name\": \"plugins_$RANDOM\"}" | json '["master_key"]')

cd "$work"
cargo new --quiet --lib tag-plan && cd tag-plan
cargo add --quiet weir-plugin --path "$repo/sdk/plugin" && cargo add --quiet serde --features derive && printf '\n[lib]\ncrate-type = ["cdylib"]\n' >> Cargo.toml
# The README's src/lib.rs, exactly as written there.
python3 - "$repo/sdk/plugin/README.md" > src/lib.rs <<'PY'
import sys
text = open(sys.argv[1]).read()
after = text.split("`src/lib.rs`:", 1)[1]
print(after.split("```rust\n", 1)[1].split("```", 1)[0], end="")
PY
cargo build --quiet --release --target wasm32-wasip2
target=${CARGO_TARGET_DIR:-target}
"$weir" plugin upload --url "$WEIR" "$target/wasm32-wasip2/release/tag_plan.wasm" --hook enrich --master-key "$MASTER" --config '{"plan": "pro"}'
"$weir" plugin test --url "$WEIR" tag-plan --master-key "$MASTER" --events '[{"collection": "pageview", "properties": {"_user": "u1"}}]'
