#!/usr/bin/env bash
# Moves one tenant's store to a new place (README "Operating cells"):
#
#   stop → raise the epoch in the shard map → fence the old store → copy
#   (export, import) → compare checksums → start at the new epoch → wait
#   until ready → switch the ingress
#
# and prints how long the tenant was down (from the stop to the switch).
# TikTok's webhook retries and the daemon's poll cover that time.
#
# The places are folders this shell can reach (a VM's disks, or a Job that
# mounts the old and the new volume). Stopping, starting and switching are
# commands you give, so the same script drives systemd, Kubernetes or a
# test:
#
#   deploy/move-tenant.sh --tenant acme --epoch 3 \
#     --from /var/lib/orderflow/acme --to /mnt/new/acme \
#     --shard-map /etc/orderflow/shards.toml --cell cell-b \
#     --stop  'kubectl -n orderflow scale sts/orderflow-acme --replicas=0 && kubectl -n orderflow wait --for=delete pod/orderflow-acme-0' \
#     --start 'kubectl -n orderflow apply -f cells/cell-b/acme.yaml' \
#     --ready https://cell-b.internal/t/acme/readyz \
#     --switch 'kubectl -n orderflow apply -f ingress.yaml'
#
# --stop must return once the old daemon has exited (sled's lock is free).
# --shard-map is the file every cell reads; with GitOps, --publish runs
# after it is edited (e.g. 'git commit -am "acme: epoch 3" && git push').
# Exit status: 0 moved; 1 a step failed (the step is named; nothing after
# it ran, and the old store stays fenced, so only the new place can run).
set -euo pipefail

orderflow=${ORDERFLOW:-orderflow}
tenant= epoch= from= to= map= cell= stop= start= ready= switch= publish=
work=${TMPDIR:-/tmp}
ready_timeout=120

usage() { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --tenant) tenant=$2; shift 2 ;;
    --epoch) epoch=$2; shift 2 ;;
    --from) from=$2; shift 2 ;;
    --to) to=$2; shift 2 ;;
    --shard-map) map=$2; shift 2 ;;
    --cell) cell=$2; shift 2 ;;
    --publish) publish=$2; shift 2 ;;
    --stop) stop=$2; shift 2 ;;
    --start) start=$2; shift 2 ;;
    --ready) ready=$2; shift 2 ;;
    --ready-timeout) ready_timeout=$2; shift 2 ;;
    --switch) switch=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --orderflow) orderflow=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "move-tenant: unknown argument $1" >&2; usage ;;
  esac
done
for v in tenant epoch from to; do
  [ -n "${!v}" ] || { echo "move-tenant: --$v is required" >&2; exit 2; }
done

now() { date +%s.%N; }
step() { printf 'move-tenant: %s\n' "$*"; }
fail() { echo "move-tenant: FAILED at: $*" >&2; exit 1; }
run_hook() { [ -z "$2" ] || bash -c "$2" || fail "$1 ($2)"; }

export_file="$work/$tenant-epoch$epoch.export"
t0=$(now)
step "stopping the old daemon"
run_hook stop "$stop"
t_stopped=$(now)

if [ -n "$map" ]; then
  step "raising $tenant to epoch $epoch in $map"
  args=(shards set --map "$map" --tenant "$tenant" --epoch "$epoch")
  [ -z "$cell" ] || args+=(--cell "$cell")
  "$orderflow" "${args[@]}" || fail "shard map"
  run_hook publish "$publish"
fi

step "fencing $from at epoch $epoch"
"$orderflow" store fence "$epoch" --data-dir "$from" || fail "fence"

step "copying"
source_sum=$("$orderflow" store checksum --data-dir "$from") || fail "checksum of $from"
"$orderflow" store export --out "$export_file" --data-dir "$from" || fail "export"
"$orderflow" store import --in "$export_file" --data-dir "$to" || fail "import into $to"
copy_sum=$("$orderflow" store checksum --data-dir "$to") || fail "checksum of $to"
[ "${source_sum##*sha256 }" = "${copy_sum##*sha256 }" ] \
  || fail "checksums differ: $source_sum / $copy_sum"
step "checksums equal: sha256 ${copy_sum##*sha256 }"
rm -f "$export_file"
t_copied=$(now)

step "starting at epoch $epoch"
run_hook start "$start"
if [ -n "$ready" ]; then
  deadline=$(( $(date +%s) + ready_timeout ))
  until curl -fsS -o /dev/null "$ready"; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "not ready within ${ready_timeout}s: $ready"
    sleep 0.1
  done
fi
t_ready=$(now)

step "switching the ingress"
run_hook switch "$switch"
t_done=$(now)

awk -v a="$t0" -v s="$t_stopped" -v c="$t_copied" -v r="$t_ready" -v d="$t_done" -v t="$tenant" -v e="$epoch" 'BEGIN {
  printf "move-tenant: moved %s to epoch %d: down %.2f s (stop %.2f s, fence and copy %.2f s, start until ready %.2f s, switch %.2f s)\n",
    t, e, d - a, s - a, c - s, r - c, d - r
}'
