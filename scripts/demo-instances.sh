# Sourced by scripts/demo.sh: the bank's workloads as VMs. Builds an appliance image from the
# project's own static binaries, launches one VM per line of business, shows the workload
# serving from inside its guest, then stops and deletes the VMs (the bank's deletion goes
# through four-eyes approval: bank is a protected project). Uses $BIN, $WORK, fv, step, and
# $ADDR/$BOB (the TLS address and the second administrator's token) from demo.sh.
VMS=("bank remit-1" "securities trade-1" "insurance claims-1")

# VMs outlive the daemon by design; if the demo fails half-way, end them with it.
_demo_instances_cleanup() {
  for p in $(pgrep -f -- "$WORK/state/instances/" 2>/dev/null); do kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true; done
  if [ -n "${VMNETS:-}" ]; then
    for l in fvbrpayments fvbrtrading fvbrclaims; do ip link del "$l" 2>/dev/null || true; done
    nft delete table inet fv 2>/dev/null || true
    nft delete table bridge fv 2>/dev/null || true
    nft delete table ip fv_nat 2>/dev/null || true
  fi
  cleanup
}
trap _demo_instances_cleanup EXIT

step "Hypervisor host (under TCG the daemon says so)"
fv info host

step "VM image: an appliance built from the bank's own static binaries (+ busybox)"
fv image build bank-apps --binary "$BIN/remit" --binary "$BIN/trade" --binary "$BIN/claims" --binary "$BIN/finvirt-loadgen" --binary /bin/busybox
fv image list

step "Storage: a pool, a small template volume per project, one copy-on-write clone per VM"
fv storage pool create demo --driver dir
for pv in "${VMS[@]}"; do
  set -- $pv
  fv storage volume create template --project "$1" --pool demo --size 64MiB
  fv storage volume clone template "$2-data" --project "$1"
done
fv storage volume list --project bank

# With host networking (root, network command): each VM gets a NIC on its line's network.
VMNETS=
NET_bank= NET_securities= NET_insurance=
if [ "$(id -u)" -eq 0 ] && fv network --help >/dev/null 2>&1; then
  step "Networks for the VMs: payments (bank), trading (securities), claims (insurance)"
  VMNETS=1
  fv network acl create pay-api --project bank --description "who may call the payments API"
  fv network create payments --project bank --subnet 10.90.1.0/24 --acl pay-api
  fv network create trading --project securities --subnet 10.90.2.0/24
  fv network create claims --project insurance --subnet 10.90.3.0/24
  fv network acl rule add pay-api --project bank --direction ingress --protocol tcp --port 8080 --source-network claims
  NET_bank="--network payments" NET_securities="--network trading" NET_insurance="--network claims"
fi

step "Launching one VM per line of business, each with its cloned volume attached; the guest agent supervises each workload"
T0=$(date +%s.%N)
fv launch bank-apps remit-1 --project bank --memory 384MiB --restart on-failure --volume remit-1-data $NET_bank \
  --cmd "/bin/remit --listen 127.0.0.1:8081 --data /tmp/remit --snapshot-mib 8"
fv launch bank-apps trade-1 --project securities --memory 384MiB --restart on-failure --volume trade-1-data $NET_securities \
  --cmd "/bin/trade --listen 127.0.0.1:8082 --fix-listen 127.0.0.1:9878 --data /tmp/trade"
fv launch bank-apps claims-1 --project insurance --memory 256MiB --env TZ=UTC --volume claims-1-data $NET_insurance \
  --cmd "/bin/claims --listen 127.0.0.1:8083 --data /tmp/claims"
printf 'three VMs launched to agent-ready in %.1fs\n' "$(echo "$(date +%s.%N) - $T0" | bc)"
for pv in "${VMS[@]}"; do set -- $pv; echo "project $1:"; fv list --project "$1"; done

step "Inside the bank's VM: the guest kernel, and remit answering on the guest's loopback"
fv exec remit-1 --project bank -- cat /proc/version
for _ in $(seq 1 100); do
  fv exec remit-1 --project bank -- wget -qO- http://127.0.0.1:8081/healthz 2>/dev/null && break
  sleep 0.2
done
echo
fv exec trade-1 --project securities -- sh -c 'for i in $(seq 1 50); do wget -qO- http://127.0.0.1:8082/healthz && exit 0; sleep 0.2; done; exit 1'
echo
if fv exec claims-1 --project insurance -- sh -c 'exit 3'; then echo "exit code NOT propagated" >&2; exit 1; else echo "exec exit code propagated: $?"; fi
fv metrics remit-1 --project bank

step "Attached volumes: the guest sees its clone as a virtio disk whose serial is the volume name; a live snapshot while it runs"
fv storage volume list --project bank
fv exec remit-1 --project bank -- sh -c 'for b in /sys/block/vd*; do echo "${b##*/} serial=$(cat $b/serial) size=$(($(cat $b/size) / 2048))MiB"; done'
fv exec remit-1 --project bank -- sh -c 'for b in /sys/block/vd*; do [ "$(cat $b/serial)" = remit-1-data ] && d=/dev/${b##*/}; done; echo ledger-v1 | dd of=$d bs=512 conv=sync,fsync 2>/dev/null && dd if=$d bs=9 count=1 2>/dev/null; echo'
fv storage volume snapshot remit-1-data before-eod --project bank   # live: remit-1 keeps running
fv exec remit-1 --project bank -- sh -c 'for b in /sys/block/vd*; do [ "$(cat $b/serial)" = remit-1-data ] && d=/dev/${b##*/}; done; echo ledger-v2 | dd of=$d bs=512 conv=sync,fsync 2>/dev/null && dd if=$d bs=9 count=1 2>/dev/null; echo'
fv storage volume snapshots remit-1-data --project bank
if fv storage volume delete trade-1-data --project securities 2>"$WORK/vol.err"; then echo "deleting an attached volume NOT refused" >&2; exit 1; fi
echo "refused as expected: $(cat "$WORK/vol.err")"

if [ -n "$VMNETS" ]; then
  step "NICs: each guest's interface has a static address on its line's network"
  fv exec remit-1 --project bank -- ip -4 -o addr show | tee "$WORK/remit-ip.txt"
  grep -q 'inet 10\.90\.1\.' "$WORK/remit-ip.txt" || { echo "remit-1 has no address on payments" >&2; exit 1; }
  fv exec trade-1 --project securities -- ip -4 -o addr show | grep 'inet 10\.90\.2\.' || { echo "trade-1 has no address on trading" >&2; exit 1; }
  fv exec claims-1 --project insurance -- ip -4 -o addr show | grep 'inet 10\.90\.3\.' || { echo "claims-1 has no address on claims" >&2; exit 1; }
  ip -o link show master fvbrpayments | sed 's/^[0-9]*: \([^:@]*\).*/tap on fvbrpayments: \1/'

  step "Segmentation report with the VMs on their networks: only claims -> payments tcp/8080 is open"
  fv network segmentation-report --timeout 1s
  fv network segmentation-report --timeout 1s -o json >"$WORK/segmentation-vms.json"
  OPEN=$(grep -c '"reachable": true' "$WORK/segmentation-vms.json" || true)
  echo "open cells: $OPEN (expected 1: claims -> payments)"
  [ "$OPEN" = 1 ] || { echo "unexpected segmentation matrix with the VMs plugged in" >&2; exit 1; }
fi

step "Graceful stop (agent shutdown: workloads get SIGTERM), then delete"
fv stop remit-1 --project bank
fv stop trade-1 --project securities
fv stop claims-1 --project insurance
fv delete trade-1 --project securities
fv delete claims-1 --project insurance
# bank is protected: the deletion is filed for a second identity, Bob approves it over TLS.
fv delete remit-1 --project bank
VMAPPROVAL=$(fv approval list --status pending -o json | sed -n 's/.*"id": "\([0-9a-f]*\)".*/\1/p' | head -1)
FINVIRT_REMOTE="https://$ADDR" FINVIRT_TOKEN="$BOB" FINVIRT_SERVER_CERT="$WORK/state/server.crt" \
  fv approval approve "$VMAPPROVAL" --reason "remit-1 decommissioned after the demo"
fv list --project bank
fv image delete bank-apps

step "Volumes: detached with their VMs, then deleted (bank's deletes need the second identity)"
fv storage volume list --project securities
for pv in "${VMS[@]}"; do
  set -- $pv
  for v in "$2-data" template; do
    fv storage volume delete "$v" --project "$1"
    if [ "$1" = bank ]; then
      VAPPROVAL=$(fv approval list --status pending -o json | sed -n 's/.*"id": "\([0-9a-f]*\)".*/\1/p' | head -1)
      FINVIRT_REMOTE="https://$ADDR" FINVIRT_TOKEN="$BOB" FINVIRT_SERVER_CERT="$WORK/state/server.crt" \
        fv approval approve "$VAPPROVAL" --reason "demo volume $v retired"
    fi
  done
done
fv storage pool delete demo
if [ -n "$VMNETS" ]; then
  step "VM networks: deleted (their NICs went with the VMs; bank's delete needs the second identity)"
  # payments and its ACL first: the ACL's rule names the claims network.
  fv network delete payments --project bank
  NAPPROVAL=$(fv approval list --status pending -o json | sed -n 's/.*"id": "\([0-9a-f]*\)".*/\1/p' | head -1)
  FINVIRT_REMOTE="https://$ADDR" FINVIRT_TOKEN="$BOB" FINVIRT_SERVER_CERT="$WORK/state/server.crt" \
    fv approval approve "$NAPPROVAL" --reason "demo network retired"
  fv network acl delete pay-api --project bank
  NAPPROVAL=$(fv approval list --status pending -o json | sed -n 's/.*"id": "\([0-9a-f]*\)".*/\1/p' | head -1)
  FINVIRT_REMOTE="https://$ADDR" FINVIRT_TOKEN="$BOB" FINVIRT_SERVER_CERT="$WORK/state/server.crt" \
    fv approval approve "$NAPPROVAL" --reason "demo ACL retired"
  fv network delete trading --project securities
  fv network delete claims --project insurance
  if ip -o link show | grep -q 'fvbr\(payments\|trading\|claims\)'; then echo "bridges left on the host" >&2; exit 1; fi
fi
