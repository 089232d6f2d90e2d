#!/usr/bin/env bash
# Fuzz every route of a running `veil serve` from its own /openapi.json with schemathesis:
# no 5xx, no undocumented status, no response outside its schema. Part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
VEIL=${VEIL:-target/debug/veil}
VENV=target/schemathesis-venv
SCHEMATHESIS_VERSION=4.32.5
MAX_TIME=${MAX_TIME:-90}

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi
[ -x "$VEIL" ] || cargo build

work=$(mktemp -d)
VEIL=$(realpath "$VEIL"); VENV=$(realpath "$VENV")
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
key=$("$VEIL" keys create --name schemathesis --state-dir "$work/state" | tail -1)
# An admin user for the admin API's own pass (HTTP Basic: the fuzzer cannot delete a user).
admin_password="fuzz-admin-password-$RANDOM$RANDOM"
echo "$admin_password" | "$VEIL" admin add-user fuzz --state-dir "$work/state" > /dev/null
# No rate limit: the fuzzer sends thousands of requests.
printf '[api]\nrate_per_minute = 0\nrate_per_day = 0\n' > "$work/veil.toml"
"$VEIL" serve --config "$work/veil.toml" --state-dir "$work/state" --listen 127.0.0.1:0 2> "$work/log" &
pid=$!
for _ in $(seq 200); do
    base=$(sed -n 's/^veil: listening on //p' "$work/log")
    [ -n "$base" ] && grep -q "^veil: ready" "$work/log" && break
    sleep 0.1
done
grep -q "^veil: ready" "$work/log" || { cat "$work/log"; echo "veil serve did not start"; exit 1; }

# One worker: hypothesis' lambda introspection is not thread-safe on this Python. Run from the
# scratch directory: schemathesis writes a .schemathesis/ cache into its working directory.
cd "$work"
# The Xylolabs admin API as an admin user (HTTP Basic; the main pass below sees its 401/403
# only). First, and without the sign-in route: sign-in attempts count against the client's ten a
# minute, and past them the device refuses even an admin's right password until the minute ends
# (the main pass fuzzes sign-in).
basic=$(printf 'fuzz:%s' "$admin_password" | base64 -w0)
"$VENV/bin/st" run "$base/openapi.json" -H "Authorization: Basic $basic" -w 1 --max-time "${ADMIN_MAX_TIME:-45}" \
    --include-path-regex '^/api/v1/admin/(auth/session|auth/logout|stats|images|jobs|test|api-keys)' \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --report-dir "$work/report-admin" > "$work/st-admin.log" 2>&1 || { cat "$work/st-admin.log"; tail -20 "$work/log"; exit 1; }
tail -12 "$work/st-admin.log"
if grep -q "Authentication failed\|Rate limited" "$work/st-admin.log"; then
    echo "schemathesis: the admin pass was not let in"; exit 1
fi
"$VENV/bin/st" run "$base/openapi.json" -H "X-API-Key: $key" -w 1 --max-time "$MAX_TIME" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --report-dir "$work/report" > "$work/st.log" 2>&1 || { cat "$work/st.log"; tail -20 "$work/log"; exit 1; }
tail -12 "$work/st.log"
if grep -q "panicked" "$work/log"; then
    grep -B2 -A5 panicked "$work/log"
    exit 1
fi
echo "schemathesis: no server error and no schema violation"
