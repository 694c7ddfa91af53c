package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// RemitConfig configures the remit (payments ledger) scenario.
type RemitConfig struct {
	Target            string
	RunID             string        // prefix of every id this run creates
	Accounts          int           // customer accounts (Hot forces 10)
	Hot               bool          // hot-account mode: 10 accounts, heavy contention
	Batch             int           // transfers per request (>1 uses /v1/transfers/batch)
	Initial           int64         // minor units issued to each customer account
	MaxAmount         int64         // transfer amounts are uniform in 1..MaxAmount
	Currency          string        //
	ReadEvery         time.Duration // periodic non-snapshot reads during load (0 = off)
	CrashEvery        time.Duration // crash mode: kill -9 and restart Proc (needs Proc)
	Proc              *Proc         // restartable remit, for crash mode
	VerifyConc        int           // parallel GETs in the final verification
	SkipTransferCheck bool          // skip GET of every transfer (bank/invariants still run)
	Engine            Config
	Logf              func(string, ...any)
}

// TransferRec is one transfer the scenario submitted and what it learned.
type TransferRec struct {
	ID            string
	Debit, Credit int // indexes into the account list
	Amount        int64
	Outcome       Outcome
	Code          string
}

// Outcome of a submitted transfer as seen by the client.
type Outcome uint8

const (
	Acked    Outcome = iota + 1 // 201 or idempotent 200
	Rejected                    // definite 4xx rejection
	Unknown                     // transport error / 5xx: may or may not be applied
)

type remitRun struct {
	cfg      RemitConfig
	c        *Client
	accounts []string
	mint     string
	seq      atomic.Int64
	mu       sync.Mutex
	recs     []TransferRec
}

type transferJSON struct {
	ID              string `json:"id"`
	DebitAccountID  string `json:"debit_account_id"`
	CreditAccountID string `json:"credit_account_id"`
	Amount          int64  `json:"amount"`
	Currency        string `json:"currency"`
	Pending         bool   `json:"pending"`
	TimeoutSeconds  int    `json:"timeout_seconds"`
}

type batchResults struct {
	Results []struct {
		ID     string `json:"id"`
		Status int    `json:"status"`
		Code   string `json:"code"`
		Error  string `json:"error"`
	} `json:"results"`
}

type accountJSON struct {
	ID      string   `json:"id"`
	Flags   []string `json:"flags"`
	Balance int64    `json:"balance"`
}

// RunRemit sets up accounts, runs random transfers, optionally crashing
// remit, and verifies the ledger at the end.
func RunRemit(ctx context.Context, cfg RemitConfig) (*Report, error) {
	if cfg.Hot {
		cfg.Accounts = 10
	}
	if cfg.Accounts < 2 {
		return nil, fmt.Errorf("remit scenario needs >= 2 accounts, got %d", cfg.Accounts)
	}
	cfg.Batch = max(cfg.Batch, 1)
	if cfg.Currency == "" {
		cfg.Currency = "EUR"
	}
	if cfg.VerifyConc <= 0 {
		cfg.VerifyConc = 32
	}
	if cfg.CrashEvery > 0 && cfg.Proc == nil {
		return nil, fmt.Errorf("crash mode needs a remit to restart: give --spawn /path/to/remit or --remit-cmd")
	}
	r := &remitRun{cfg: cfg, c: NewClient(cfg.Target, 15*time.Second), mint: cfg.RunID + "-mint"}
	// Idle keep-alive connections would make a graceful server stop wait.
	defer r.c.HC.CloseIdleConnections()
	for i := 0; i < cfg.Accounts; i++ {
		r.accounts = append(r.accounts, fmt.Sprintf("%s-acc-%d", cfg.RunID, i))
	}
	if err := r.setup(ctx); err != nil {
		return nil, fmt.Errorf("remit setup: %w", err)
	}
	runCtx, stopBg := context.WithCancel(ctx)
	var bg sync.WaitGroup
	var reads []BankRead
	var readMu sync.Mutex
	var crashErr error
	if cfg.ReadEvery > 0 {
		bg.Add(1)
		go func() {
			defer bg.Done()
			for runCtx.Err() == nil {
				select {
				case <-runCtx.Done():
					return
				case <-time.After(cfg.ReadEvery):
				}
				if rd, err := r.readAll(runCtx, false); err == nil {
					rd.Invariants, _ = r.readInvariants(runCtx)
					readMu.Lock()
					reads = append(reads, rd)
					readMu.Unlock()
				}
			}
		}()
	}
	if cfg.CrashEvery > 0 {
		bg.Add(1)
		go func() { defer bg.Done(); crashErr = cfg.Proc.CrashLoop(runCtx, cfg.CrashEvery, cfg.Logf) }()
	}
	res, err := Run(ctx, cfg.Engine, r.op)
	stopBg()
	bg.Wait()
	if err != nil {
		return nil, err
	}
	rep := NewReport("remit", cfg.Target, res)
	if crashErr != nil {
		rep.AddCheck("crash_restart", false, "%v", crashErr)
	}
	if cfg.Proc != nil && !cfg.Proc.Running() {
		if err := cfg.Proc.Start(ctx); err != nil {
			rep.AddCheck("final_restart", false, "%v", err)
			return rep, nil
		}
	}
	if err := r.c.WaitHealthy(ctx, 60*time.Second); err != nil {
		rep.AddCheck("healthy_after_load", false, "%v", err)
		return rep, nil
	}
	r.verify(ctx, rep, reads)
	return rep, nil
}

func (r *remitRun) setup(ctx context.Context) error {
	accs := []map[string]any{{"id": r.mint, "currency": r.cfg.Currency, "flags": []string{}}}
	for _, a := range r.accounts {
		accs = append(accs, map[string]any{"id": a, "currency": r.cfg.Currency, "flags": []string{"debits_must_not_exceed_credits"}})
	}
	for i := 0; i < len(accs); i += 1000 {
		var out batchResults
		chunk := accs[i:min(i+1000, len(accs))]
		if _, err := r.c.Do(ctx, "POST", "/v1/accounts/batch", nil, map[string]any{"accounts": chunk}, &out); err != nil {
			return fmt.Errorf("create accounts: %w", err)
		}
		for _, res := range out.Results {
			if res.Status != 201 && res.Status != 200 {
				return fmt.Errorf("create account %s: %d %s %s", res.ID, res.Status, res.Code, res.Error)
			}
		}
	}
	var fund []transferJSON
	for i, a := range r.accounts {
		fund = append(fund, transferJSON{ID: fmt.Sprintf("%s-fund-%d", r.cfg.RunID, i), DebitAccountID: r.mint, CreditAccountID: a,
			Amount: r.cfg.Initial, Currency: r.cfg.Currency})
	}
	for i := 0; i < len(fund); i += 1000 {
		var out batchResults
		if _, err := r.c.Do(ctx, "POST", "/v1/transfers/batch", nil, map[string]any{"linked": false, "transfers": fund[i:min(i+1000, len(fund))]}, &out); err != nil {
			return fmt.Errorf("fund accounts: %w", err)
		}
		for _, res := range out.Results {
			if res.Status != 201 && res.Status != 200 {
				return fmt.Errorf("fund %s: %d %s %s", res.ID, res.Status, res.Code, res.Error)
			}
		}
	}
	return nil
}

// newTransfer draws a random transfer between two distinct accounts.
func (r *remitRun) newTransfer(rng *rand.Rand) (TransferRec, transferJSON) {
	n := len(r.accounts)
	d := rng.IntN(n)
	c := (d + 1 + rng.IntN(n-1)) % n
	rec := TransferRec{ID: r.cfg.RunID + "-t-" + strconv.FormatInt(r.seq.Add(1), 10), Debit: d, Credit: c, Amount: 1 + rng.Int64N(max(r.cfg.MaxAmount, 1))}
	return rec, transferJSON{ID: rec.ID, DebitAccountID: r.accounts[d], CreditAccountID: r.accounts[c], Amount: rec.Amount, Currency: r.cfg.Currency}
}

func (r *remitRun) op(ctx context.Context, worker int) string {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(worker)))
	recs := make([]TransferRec, r.cfg.Batch)
	bodies := make([]transferJSON, r.cfg.Batch)
	for i := range recs {
		recs[i], bodies[i] = r.newTransfer(rng)
	}
	kind := ""
	if r.cfg.Batch == 1 {
		_, err := r.c.Do(ctx, "POST", "/v1/transfers", map[string]string{"Idempotency-Key": recs[0].ID}, bodies[0], nil)
		recs[0].Outcome, recs[0].Code = classify(err)
		kind = Kind(err)
	} else {
		var out batchResults
		_, err := r.c.Do(ctx, "POST", "/v1/transfers/batch", nil, map[string]any{"linked": false, "transfers": bodies}, &out)
		if err == nil && len(out.Results) != len(recs) {
			err = fmt.Errorf("batch returned %d results for %d transfers", len(out.Results), len(recs))
		}
		if err != nil {
			kind = Kind(err)
			for i := range recs {
				recs[i].Outcome = Unknown
			}
		} else {
			for i, res := range out.Results {
				switch {
				case res.Status == 201 || res.Status == 200:
					recs[i].Outcome = Acked
				case definite4xx(res.Status):
					recs[i].Outcome, recs[i].Code = Rejected, res.Code
				default:
					recs[i].Outcome = Unknown
				}
			}
		}
	}
	r.mu.Lock()
	r.recs = append(r.recs, recs...)
	r.mu.Unlock()
	return kind
}

// classify maps a response to an outcome. 408, 409 (e.g.
// idempotency_key_in_flight) and 429 do not say the transfer was not
// applied, so they count as unknown and are resolved by the final GET.
func classify(err error) (Outcome, string) {
	if err == nil {
		return Acked, ""
	}
	if ae, ok := err.(*APIError); ok && definite4xx(ae.Status) {
		return Rejected, ae.Code
	}
	return Unknown, Kind(err)
}

func definite4xx(st int) bool {
	return st >= 400 && st < 500 && st != 408 && st != 409 && st != 429
}

// readAll reads every customer account one by one.
func (r *remitRun) readAll(ctx context.Context, quiescent bool) (BankRead, error) {
	rd := BankRead{At: time.Now(), Quiescent: quiescent, Balances: map[string]int64{}}
	var mu sync.Mutex
	err := parallel(ctx, len(r.accounts), r.cfg.VerifyConc, func(i int) error {
		var a accountJSON
		_, err := r.c.Do(ctx, "GET", "/v1/accounts/"+r.accounts[i], nil, nil, &a)
		mu.Lock()
		defer mu.Unlock()
		if ae, ok := err.(*APIError); ok && ae.Status == 404 {
			rd.Missing = append(rd.Missing, r.accounts[i])
			return nil
		}
		if err != nil {
			return err
		}
		rd.Balances[a.ID] = a.Balance
		return nil
	})
	return rd, err
}

// readInvariants reads /v1/invariants and the mint balance.
func (r *remitRun) readInvariants(ctx context.Context) (*InvariantsRead, error) {
	var inv struct {
		OK         bool `json:"ok"`
		Currencies map[string]struct {
			SumBalances int64 `json:"sum_balances"`
		} `json:"currencies"`
	}
	if _, err := r.c.Do(ctx, "GET", "/v1/invariants", nil, nil, &inv); err != nil {
		return nil, err
	}
	var mint accountJSON
	if _, err := r.c.Do(ctx, "GET", "/v1/accounts/"+r.mint, nil, nil, &mint); err != nil {
		return nil, err
	}
	return &InvariantsRead{OK: inv.OK, SumBalances: inv.Currencies[r.cfg.Currency].SumBalances, MintBalance: mint.Balance}, nil
}

// parallel runs f(0..n-1) on conc goroutines, returning the first error.
func parallel(ctx context.Context, n, conc int, f func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for w := 0; w < min(conc, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}
