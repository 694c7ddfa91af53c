# Sourced by scripts/demo.sh: runs the three reference workloads and drives them with the
# load generator, printing business figures. Uses $BIN, $WORK, step, PIDS from demo.sh.
DEMO_SECS=${DEMO_SECS:-5}
R=127.0.0.1:18081 T=127.0.0.1:18082 C=127.0.0.1:18083 F=127.0.0.1:19878
wait_ready() { # wait_ready URL NAME
  for _ in $(seq 1 300); do curl -fsS "$1/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "$2 did not become ready; its log:" >&2; cat "$WORK/$2.log" >&2; return 1
}

step "Starting the reference workloads: remit (payments), trade (matching + FIX), claims (insurance)"
setsid "$BIN/remit" --listen $R --data "$WORK/remit" >"$WORK/remit.log" 2>&1 & PIDS+=($!)
setsid "$BIN/trade" --listen $T --fix-listen $F --data "$WORK/trade" >"$WORK/trade.log" 2>&1 & PIDS+=($!)
setsid "$BIN/claims" --listen $C --data "$WORK/claims" --remit-url "http://$R" >"$WORK/claims.log" 2>&1 & PIDS+=($!)
wait_ready "http://$R" remit; wait_ready "http://$T" trade; wait_ready "http://$C" claims
echo "remit http://$R  trade http://$T (FIX $F)  claims http://$C"

step "Bank: ${DEMO_SECS}s of remittances, 16 clients x 100 transfers per request, then the Jepsen-style bank check"
"$BIN/finvirt-loadgen" remit --target "http://$R" --concurrency 16 --batch 100 --accounts 10000 --duration "${DEMO_SECS}s"
echo "invariants: $(curl -fsS "http://$R/v1/invariants")"

step "Bank, hot accounts: 10 accounts only (where row-lock ledgers collapse)"
"$BIN/finvirt-loadgen" remit --target "http://$R" --concurrency 16 --batch 100 --hot --duration "${DEMO_SECS}s" --run-id hot$$

step "Securities: ${DEMO_SECS}s of the exchange-core order mix (9% GTC, 3% IOC, 6% cancel, 82% replace)"
"$BIN/finvirt-loadgen" trade --target "http://$T" --concurrency 16 --duration "${DEMO_SECS}s"
echo "AAPL book: $(curl -fsS "http://$T/v1/books/AAPL?depth=3")"

step "Insurance: ${DEMO_SECS}s of claims from first notice of loss to payout through remit"
"$BIN/finvirt-loadgen" claims --target "http://$C" --remit-url "http://$R" --concurrency 16 --duration "${DEMO_SECS}s"
echo "claims stats: $(curl -fsS "http://$C/v1/stats")"
