#!/usr/bin/env bash
# Alert latency benchmark: from the committed alert transition (the alert's
# startsAt/endsAt, stamped by the leader that committed it through Raft) to the
# notification's arrival at a chat webhook (Slack format) and at an SMTP server
# (aiosmtpd, STARTTLS + AUTH), over BENCH_ROUNDS rounds of a real node failure.
#
# usage: scripts/bench-alerts.sh [BIN_DIR]      (default .build/release)
#   run from the repo root after `swift build -c release` (or pass .build/debug).
# env:
#   BENCH_ROUNDS    node failures to measure (default 10)
#   BENCH_STRICT=1  exit 1 when the webhook median misses the 1 s target
#   BENCH_ALERTMANAGER_ALERTS  alerts to time through a real prometheus-alertmanager
#                   (Debian package, default config: group_wait 30 s) as the
#                   measured anchor; default 3 when it is installed, 0 skips it
#
# Each round, all on 127.0.5.x: kill -9 the agent; the leader's liveness view
# turns the node down after downAfter (1 s here), the alert loop commits
# NodeDown and notifies; the script waits for both messages, reads the alert's
# committed startsAt with `specola alerts --json`, then restarts the agent and
# does the same for the resolve. The fixtures stamp each arrival with their own
# clock (same machine). Detection time (downAfter, the loop's 250 ms tick) is
# not part of the number: it is the failure ladder's, reported separately.
#
# Anchor: Alertmanager's default group_wait of 30 s, the least time it holds a
# new alert group before the first notification (route defaults), measured from
# the moment it receives the alert. We print our median against it, and when
# prometheus-alertmanager is installed we also measure it: alerts POSTed to its
# v2 API (clustering off, loopback only), each its own group, timed from the
# POST to arrival at the same webhook fixture.
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir=${1:-.build/release}
rounds=${BENCH_ROUNDS:-10}
fixtures=Tests/Fixtures/alerting
host=127.0.5.1
agent_addr=127.0.5.21
coord=127.0.5.11:7460 coord_metrics=127.0.5.11:9460
alertmanager=127.0.5.2:9493
am_alerts=${BENCH_ALERTMANAGER_ALERTS:-3}
command -v prometheus-alertmanager >/dev/null || am_alerts=0
anchor_ms=30000

work=""
die() {
  echo "bench-alerts: $*" >&2
  if [ -n "$work" ] && [ -d "$work/logs" ]; then
    for f in "$work"/logs/*.log; do [ -s "$f" ] && { echo "--- ${f##*/} (last lines)" >&2; tail -n 12 "$f" >&2; }; done
  fi
  exit 1
}

[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS='$rounds' must be a positive whole number"
for b in specola specola-agent specola-coordinator; do
  [ -x "$bin_dir/$b" ] || die "$bin_dir/$b not found; run 'swift build -c release' (or pass the bin dir, e.g. .build/debug)"
done
command -v openssl >/dev/null || die "openssl missing"
command -v curl >/dev/null || die "curl missing"
python=""
for p in /usr/bin/python3 python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import aiosmtpd' 2>/dev/null; then python=$p; break; fi
done
[ -n "$python" ] || die "no python3 can import aiosmtpd; run scripts/install-deps.sh (Debian python3-aiosmtpd)"

# --- process bookkeeping: everything started is stopped by PID --------------
work=$(mktemp -d /tmp/specola-bench-alerts.XXXXXX)
pids=()
alive() { [ -d "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
cleanup() {
  local pid deadline
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  deadline=$((SECONDS + 10))
  for pid in "${pids[@]}"; do
    while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for() { # wait_for SECONDS WHAT COMMAND...
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$what not ready after ${limit}s"
    sleep 0.05
  done
}
mkdir -p "$work/logs" "$work/data"

# --- receivers -----------------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$work/smtp-key.pem" \
  -out "$work/smtp.pem" -days 2 -subj /CN=bench-smtp -addext "subjectAltName=IP:$host" >/dev/null 2>&1 ||
  die "openssl could not make the SMTP server's certificate"
printf 'bench-password\n' >"$work/smtp-password"; chmod 600 "$work/smtp-password"
"$python" -B "$fixtures/webhook_receiver.py" --host "$host" --log "$work/webhook.jsonl" --ready "$work/webhook.port" \
  >"$work/logs/webhook.log" 2>&1 &
pids+=($!)
"$python" -B "$fixtures/smtp_server.py" --host "$host" --log "$work/smtp.jsonl" --ready "$work/smtp.port" \
  --cert "$work/smtp.pem" --key "$work/smtp-key.pem" --require-tls --user bench --password bench-password \
  >"$work/logs/smtp.log" 2>&1 &
pids+=($!)
wait_for 20 "webhook receiver" test -s "$work/webhook.port"
wait_for 20 "SMTP server" test -s "$work/smtp.port"

# --- PKI, coordinator, agent ---------------------------------------------------
pki=$work/pki
"$bin_dir/specola" pki init --dir "$pki" >/dev/null
"$bin_dir/specola" pki issue --dir "$pki" --role coordinator --name c1 --san "${coord%:*}" >/dev/null
"$bin_dir/specola" pki issue --dir "$pki" --role node --name bench1 --san "$agent_addr" >/dev/null
"$bin_dir/specola" pki issue --dir "$pki" --role user --name bench >/dev/null
export SPECOLA_ADDR=$coord SPECOLA_CACERT=$pki/ca.pem SPECOLA_CLIENT_CERT=$pki/user-bench.pem SPECOLA_CLIENT_KEY=$pki/user-bench-key.pem

cat >"$work/coordinator.yaml" <<EOF
name: c1
listen: $coord
metricsListen: $coord_metrics
dataDir: $work/data/c1
tls: {ca: $pki/ca.pem, cert: $pki/coordinator-c1.pem, key: $pki/coordinator-c1-key.pem}
heartbeatInterval: 0.25
suspectAfter: 0.5
downAfter: 1
logLevel: warning
access: {bootstrapAdmins: [bench]}
alerting:
  receivers:
    - name: chat
      webhook: {url: "http://$host:$(cat "$work/webhook.port")/hooks/bench", format: slack}
    - name: mail
      email:
        from: "Specola <alerts@example.org>"
        to: [ops@example.org]
        smtp: {host: $host, port: $(cat "$work/smtp.port"), starttls: required, caFile: $work/smtp.pem, username: bench, passwordFile: $work/smtp-password}
  routes:
    - receivers: [chat, mail]
      groupBy: [alertname, node]
      groupWait: 0
      groupInterval: 0
EOF
cat >"$work/agent.yaml" <<EOF
nodeName: bench1
coordinators: [$coord]
address: $agent_addr
dataDir: $work/data/bench1
heartbeatInterval: 0.25
reportInterval: 1
tls: {ca: $pki/ca.pem, cert: $pki/node-bench1.pem, key: $pki/node-bench1-key.pem}
bmc: {mode: none}
libvirt: {uri: ""}
podman: {enabled: false}
logLevel: warning
EOF

"$bin_dir/specola-coordinator" --config "$work/coordinator.yaml" >"$work/logs/coordinator.log" 2>&1 &
pids+=($!)
wait_for 30 "coordinator (http://$coord_metrics/healthz)" curl -sf --max-time 2 "http://$coord_metrics/healthz"

agent_pid=""
start_agent() {
  "$bin_dir/specola-agent" --config "$work/agent.yaml" >>"$work/logs/agent.log" 2>&1 &
  agent_pid=$!; pids+=("$agent_pid")
}
node_ready() { "$bin_dir/specola" nodes --json | "$python" -c '
import json, sys
nodes = json.load(sys.stdin).get("nodes", [])
sys.exit(0 if any(n["name"] == "bench1" and n.get("status") == "ready" and int(n.get("reportsApplied", 0)) > 0 for n in nodes) else 1)'; }
start_agent
wait_for 60 "agent bench1 to report" node_ready

# count FILE STATE: messages of STATE (FIRING|RESOLVED) about bench1 in a fixture log.
count() { "$python" - "$1" "$2" <<'PY'
import json, sys
path, state = sys.argv[1], sys.argv[2]
n = 0
try:
    for line in open(path, encoding="utf-8"):
        r = json.loads(line)
        text = r.get("body") or r.get("data") or ""
        if "[%s:" % state in text and "node=bench1" in text:
            n += 1
except FileNotFoundError:
    pass
print(n)
PY
}
# arrival FILE STATE K: arrival time (ms) of the K-th such message.
arrival() { "$python" - "$1" "$2" "$3" <<'PY'
import json, sys
path, state, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
hits = []
for line in open(path, encoding="utf-8"):
    r = json.loads(line)
    text = r.get("body") or r.get("data") or ""
    if "[%s:" % state in text and "node=bench1" in text:
        hits.append(r["received_at_unix_ms"])
print(hits[k - 1])
PY
}
# committed FIELD: startsAtUnixMs or endsAtUnixMs of NodeDown bench1, as committed.
committed() { "$bin_dir/specola" alerts --all --json | "$python" -c '
import json, sys
alerts = [a for a in json.load(sys.stdin).get("alerts", []) if a["rule"] == "NodeDown" and a["labels"].get("node") == "bench1"]
print(int(alerts[0][sys.argv[1]]))' "$1"; }
has() { [ "$(count "$1" "$2")" -ge "$3" ]; }

: >"$work/latencies"
echo "bench-alerts: $rounds rounds of kill -9 / restart of agent bench1 (downAfter 1 s, groupWait 0)"
for round in $(seq 1 "$rounds"); do
  killed=$(date +%s%3N)
  kill -KILL "$agent_pid"; wait "$agent_pid" 2>/dev/null || true
  wait_for 30 "round $round: NodeDown on the webhook" has "$work/webhook.jsonl" FIRING "$round"
  wait_for 30 "round $round: NodeDown by e-mail" has "$work/smtp.jsonl" FIRING "$round"
  t=$(committed startsAtUnixMs)
  echo "detect ladder $(( t - killed ))" >>"$work/latencies"
  echo "fire webhook $(( $(arrival "$work/webhook.jsonl" FIRING "$round") - t ))" >>"$work/latencies"
  echo "fire email $(( $(arrival "$work/smtp.jsonl" FIRING "$round") - t ))" >>"$work/latencies"
  start_agent
  wait_for 60 "round $round: the resolve on the webhook" has "$work/webhook.jsonl" RESOLVED "$round"
  wait_for 30 "round $round: the resolve by e-mail" has "$work/smtp.jsonl" RESOLVED "$round"
  t=$(committed endsAtUnixMs)
  echo "resolve webhook $(( $(arrival "$work/webhook.jsonl" RESOLVED "$round") - t ))" >>"$work/latencies"
  echo "resolve email $(( $(arrival "$work/smtp.jsonl" RESOLVED "$round") - t ))" >>"$work/latencies"
  wait_for 60 "round $round: agent bench1 to report again" node_ready
  printf '  round %d: %s\n' "$round" "$(tail -5 "$work/latencies" | awk '{ printf "%s %s %s ms; ", $1, $2, $3 }')"
done

# --- the measured anchor: a real Alertmanager with its default route timing --------
if [ "$am_alerts" -gt 0 ]; then
  cat >"$work/alertmanager.yml" <<EOF
route:
  receiver: hook
  group_by: [alertname, node]
receivers:
  - name: hook
    webhook_configs:
      - url: http://$host:$(cat "$work/webhook.port")/hooks/alertmanager
EOF
  prometheus-alertmanager --config.file="$work/alertmanager.yml" --storage.path="$work/am" \
    --web.listen-address="$alertmanager" --cluster.listen-address= >"$work/logs/alertmanager.log" 2>&1 &
  pids+=($!)
  wait_for 30 "alertmanager (http://$alertmanager/-/ready)" curl -sf --max-time 2 "http://$alertmanager/-/ready"
  echo "bench-alerts: timing $am_alerts alert(s) through prometheus-alertmanager (default group_wait; about 30 s)"
  for i in $(seq 1 "$am_alerts"); do
    posted=$(date +%s%3N)
    curl -sf --max-time 5 -XPOST -H 'Content-Type: application/json' "http://$alertmanager/api/v2/alerts" \
      -d "[{\"labels\": {\"alertname\": \"NodeDown\", \"node\": \"am$i\"}}]" >/dev/null || die "alertmanager refused alert $i"
    echo "am$i $posted" >>"$work/am-posted"
  done
  am_arrived() { "$python" - "$work/webhook.jsonl" "$am_alerts" <<'PY'
import json, sys
seen = set()
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    if r["path"].endswith("/alertmanager"):
        for a in json.loads(r["body"])["alerts"]:
            seen.add(a["labels"]["node"])
sys.exit(0 if len(seen) >= int(sys.argv[2]) else 1)
PY
  }
  wait_for 120 "alertmanager's notifications" am_arrived
  "$python" - "$work/webhook.jsonl" "$work/am-posted" >>"$work/latencies" <<'PY'
import json, sys
posted = dict(line.split() for line in open(sys.argv[2]))
first = {}
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    if r["path"].endswith("/alertmanager"):
        for a in json.loads(r["body"])["alerts"]:
            first.setdefault(a["labels"]["node"], r["received_at_unix_ms"])
for node, at in sorted(first.items()):
    print("anchor alertmanager %d" % (at - int(posted[node])))
PY
fi

status=0
"$python" - "$work/latencies" "$anchor_ms" "$(count "$work/webhook.jsonl" FIRING)" "$(count "$work/smtp.jsonl" FIRING)" "$rounds" <<'PY' || status=$?
import sys
path, anchor, chat_firing, mail_firing, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
samples = {}
for line in open(path):
    kind, receiver, ms = line.split()
    samples.setdefault((kind, receiver), []).append(int(ms))
def median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(p / 100 * len(values) + 0.5)) - 1))]
print()
print("%-8s %-8s %5s %9s %9s %9s  %s" % ("event", "receiver", "n", "median", "p99", "max", "vs Alertmanager group_wait 30 s"))
for (kind, receiver), values in sorted(samples.items()):
    m = median(values)
    if kind == "detect":
        ratio = "(kill -9 to committed NodeDown: downAfter + loop tick, not delivery)"
    elif kind == "anchor":
        ratio = "(measured: POST to its API -> webhook, default route timing)"
    else:
        ratio = "%.4f of it (%.0fx faster)" % (m / anchor, anchor / max(m, 1))
    print("%-8s %-8s %5d %7.0fms %7dms %7dms  %s" % (kind, receiver, len(values), m, pct(values, 99), max(values), ratio))
print()
print("duplicates: %d firing chat messages and %d firing e-mails for %d failures" % (chat_firing, mail_firing, rounds))
webhook = median(samples[("fire", "webhook")])
print("target: webhook median <= 1000 ms from the committed transition: %s (%.0f ms)" % ("met" if webhook <= 1000 else "MISSED", webhook))
sys.exit(0 if webhook <= 1000 and chat_firing == rounds and mail_firing == rounds else 3)
PY
if [ "${BENCH_STRICT:-0}" = 1 ] && [ $status -ne 0 ]; then exit 1; fi
exit 0
