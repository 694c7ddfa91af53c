# Sourced by scripts/demo.sh: isolated networks for the three lines of business, one
# intended path between them (claims -> payments tcp/8080), and the segmentation report
# measured with real packets. Uses $BIN, $WORK, fv, step and $ADDR/$BOB (the TLS address
# and the second administrator's token) from demo.sh.
#
# What this touches on the host (the demo daemon works in the host's network namespace):
# bridges fvbrpayments, fvbrtrading, fvbrclaims with their gateway addresses and per-bridge
# forwarding (never the global ip_forward), nftables tables "inet fv", "bridge fv",
# "ip fv_nat", and during the report probe namespaces /run/netns/fv-probe-* with veths
# fvp*. All of it is removed at the end of this part (networks deleted through the API),
# or by the trap below if the demo fails half-way.
if [ "$(id -u)" -ne 0 ]; then
  step "Networks: skipped (bridges and nftables need root)"
elif ! fv network --help >/dev/null 2>&1; then
  step "Networks: skipped (this finvirt binary has no 'network' command: main.go must add newNetworkCmd)"
else
  _demo_networks_cleanup() {
    for l in fvbrpayments fvbrtrading fvbrclaims; do ip link del "$l" 2>/dev/null || true; done
    for p in /run/netns/fv-probe-*; do [ -e "$p" ] && ip netns del "$(basename "$p")" 2>/dev/null; done
    for l in $(ip -o link show 2>/dev/null | sed -n 's/^[0-9]*: \(fvp[0-9a-f]\{8\}\)[@:].*/\1/p'); do ip link del "$l" 2>/dev/null || true; done
    nft delete table inet fv 2>/dev/null || true
    nft delete table bridge fv 2>/dev/null || true
    nft delete table ip fv_nat 2>/dev/null || true
    cleanup
  }
  trap _demo_networks_cleanup EXIT
  _bob() { FINVIRT_REMOTE="https://$ADDR" FINVIRT_TOKEN="$BOB" FINVIRT_SERVER_CERT="$WORK/state/server.crt" fv "$@"; }
  _approve_pending() {
    local id
    id=$(fv approval list --status pending -o json | sed -n 's/.*"id": "\([0-9a-f]*\)".*/\1/p' | head -1)
    _bob approval approve "$id" --reason "demo teardown"
  }

  step "Networks: one isolated segment per line of business"
  fv network acl create pay-api --project bank --description "who may call the payments API"
  fv network create claims --project insurance --subnet 10.90.3.0/24 --dhcp
  fv network create trading --project securities --subnet 10.90.2.0/24 --dhcp
  fv network create payments --project bank --subnet 10.90.1.0/24 --dhcp --acl pay-api
  fv network list --project bank
  fv network list --project securities
  fv network list --project insurance

  step "The one intended path: claims may call payments on tcp/8080, nothing else crosses"
  fv network acl rule add pay-api --project bank --direction ingress --protocol tcp --port 8080 --source-network claims
  if fv network create bad --project bank --subnet 10.90.1.128/25 2>"$WORK/net.err"; then echo "overlapping subnet NOT refused" >&2; exit 1; fi
  echo "refused as expected: $(cat "$WORK/net.err")"

  step "Segmentation report (PCI DSS 11.4.5): real probes from an endpoint in every network"
  fv network segmentation-report --timeout 1s
  fv network segmentation-report --timeout 1s -o json >"$WORK/segmentation.json"
  OPEN=$(grep -c '"reachable": true' "$WORK/segmentation.json" || true)
  echo "open cells: $OPEN (expected 1: claims -> payments)"
  [ "$OPEN" = 1 ] || { echo "unexpected segmentation matrix" >&2; exit 1; }
  fv network acl show pay-api --project bank

  step "Networks: teardown (bank is protected: its deletes need a second identity)"
  fv network delete payments --project bank
  _approve_pending
  fv network acl delete pay-api --project bank
  _approve_pending
  fv network delete claims --project insurance
  fv network delete trading --project securities
  if ip -o link show | grep -q 'fvbr\(payments\|trading\|claims\)'; then echo "bridges left on the host" >&2; exit 1; fi
  echo "host bridges and rules removed"
  trap cleanup EXIT
fi
