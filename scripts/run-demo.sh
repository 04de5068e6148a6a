#!/usr/bin/env bash
# `make run`: two mock model backends and Envoy with the gateway filter, in the
# foreground. Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY=$(scripts/envoy-bin)
MOCK=target/tools/mock-backend
CONFIG=${CONFIG:-envoy/demo.yaml}

for port in 10000 10001 10002 9901; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is already in use on 127.0.0.1 (is another \`make run\` up?)" >&2
    exit 1
  fi
done

pids=()
cleanup() {
  trap - EXIT INT TERM
  echo; echo "stopping..."
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$MOCK" --name backend-a --listen 127.0.0.1:10001 & pids+=($!)
"$MOCK" --name backend-b --listen 127.0.0.1:10002 & pids+=($!)
"$ENVOY" -c "$CONFIG" --concurrency 2 --log-level warn --disable-hot-restart & envoy=$!; pids+=($envoy)

for _ in $(seq 1 100); do
  if curl -fsS http://127.0.0.1:9901/ready >/dev/null 2>&1; then break; fi
  sleep 0.1
done
if ! curl -fsS http://127.0.0.1:9901/ready >/dev/null 2>&1; then
  echo "Envoy did not become ready; see its log above." >&2
  exit 1
fi

cat <<'MSG'

The gateway is up on http://127.0.0.1:10000 (Envoy admin: http://127.0.0.1:9901).
Demo API key: sk-demo

  curl -s http://127.0.0.1:10000/v1/models -H 'Authorization: Bearer sk-demo'

  curl -s http://127.0.0.1:10000/v1/chat/completions \
    -H 'Authorization: Bearer sk-demo' -H 'Content-Type: application/json' \
    -d '{"model": "llama-3.1-8b-instruct", "messages": [{"role": "user", "content": "Hello"}]}'

Metrics (Prometheus text: requests, errors, latency and time-to-first-token
histograms, tokens, backends, spend; reference in docs/metrics.md):

  curl -s http://127.0.0.1:9901/stats/prometheus | grep '^openai_gateway'

Grafana dashboard to import: examples/grafana/openai-gateway.json

Stop a backend and watch its models leave the list (see the README):

  pkill -f -- '--name backend-a'
  target/tools/mock-backend --name backend-a --listen 127.0.0.1:10001 &

MSG
if [ "$CONFIG" = envoy/ecds.yaml ]; then
  cat <<'MSG'
The gateway's configuration comes from run/ecds/openai_gateway.yaml (extension
config discovery). Change it while it serves:

  .venv/bin/python scripts/ecds.py show > plugin.json   # edit plugin.json, then
  .venv/bin/python scripts/ecds.py apply plugin.json
  curl -s http://127.0.0.1:9901/stats?filter=extension_config_discovery

MSG
fi
echo "Press Ctrl-C to stop."
# Backends may be stopped and started again during the demo: only Envoy's
# exit ends it.
wait "$envoy"
