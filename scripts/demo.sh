#!/usr/bin/env bash
# make demo: runs the whole bank on finvirt in a temporary state dir and reports on it.
# Every step uses the real daemon and CLI; nothing here is simulated.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin
WORK=$(mktemp -d /tmp/finvirt-demo.XXXXXX)
export FINVIRT_SOCKET=$WORK/finvirt.sock
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
fv() { "$BIN/finvirt" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_http() { for _ in $(seq 1 300); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "timeout waiting for $1" >&2; return 1; }

step "Starting the finvirt daemon (state in $WORK/state)"
setsid "$BIN/finvirt" daemon --state-dir "$WORK/state" --listen 127.0.0.1:0 --log-level warn >"$WORK/daemon.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do fv info >/dev/null 2>&1 && break; sleep 0.1; done
fv info

step "Projects for the three lines of business, with quotas"
fv project create bank --description "Retail bank: payments and remittance" --limit-instances 10 --limit-vcpus 20 --limit-memory 16GiB --limit-disk 500GiB --protected
fv project create securities --description "Securities: order matching and FIX" --limit-instances 8 --limit-vcpus 16 --limit-memory 16GiB
fv project create insurance --description "Insurance: claims processing" --limit-instances 6 --limit-memory 8GiB
fv project list

step "Identities: an operator per project, an auditor; segregation of duties enforced"
fv token create alice --role operator --project bank --description "bank operator" -o json >"$WORK/alice.json"
fv token create bob --role admin --description "second administrator" -o json >"$WORK/bob.json"
fv token create carol --role auditor --description "internal audit" -o json >"$WORK/carol.json"
if fv token create alice --role auditor 2>"$WORK/sod.err"; then echo "segregation of duties NOT enforced" >&2; exit 1; fi
echo "refused as expected: $(cat "$WORK/sod.err")"
fv identity list

step "Four-eyes: deleting the protected bank project needs a second identity"
fv project delete bank
APPROVAL=$(fv approval list --status pending -o json | sed -n 's/.*"id": "\([0-9a-f]*\)".*/\1/p' | head -1)
if fv approval approve "$APPROVAL" 2>"$WORK/self.err"; then echo "self-approval NOT refused" >&2; exit 1; fi
echo "refused as expected: $(cat "$WORK/self.err")"
# Bob rejects it over TLS with his token: the bank stays.
ADDR=$(fv info -o json | sed -n 's/.*"tcp_address": "\([^"]*\)".*/\1/p')
BOB=$(sed -n 's/.*"secret": "\([^"]*\)".*/\1/p' "$WORK/bob.json")
FINVIRT_REMOTE="https://$ADDR" FINVIRT_TOKEN="$BOB" FINVIRT_SERVER_CERT="$WORK/state/server.crt" \
  fv approval reject "$APPROVAL" --reason "bank is in production"
fv approval list

if [ -f scripts/demo-networks.sh ]; then
  . scripts/demo-networks.sh
fi

if [ -f scripts/demo-instances.sh ]; then
  . scripts/demo-instances.sh
fi

if [ -x "$BIN/remit" ] && [ -x "$BIN/finvirt-loadgen" ] && [ -f scripts/demo-workloads.sh ]; then
  # shellcheck source=/dev/null
  . scripts/demo-workloads.sh
fi

step "State backup (a long-running operation with progress)"
fv admin backup --name demo

step "Audit trail (as the auditor would read it)"
CAROL=$(sed -n 's/.*"secret": "\([^"]*\)".*/\1/p' "$WORK/carol.json")
FINVIRT_REMOTE="https://$ADDR" FINVIRT_TOKEN="$CAROL" FINVIRT_SERVER_CERT="$WORK/state/server.crt" fv audit list
FINVIRT_REMOTE="https://$ADDR" FINVIRT_TOKEN="$CAROL" FINVIRT_SERVER_CERT="$WORK/state/server.crt" fv audit verify
step "Demo complete"
