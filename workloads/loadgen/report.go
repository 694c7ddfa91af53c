package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Percentiles summarises a histogram in milliseconds.
type Percentiles struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

func ms(v int64) float64 { return float64(v) / 1e6 }

// Summarize reads the standard percentiles from h.
func Summarize(h *Histogram) Percentiles {
	return Percentiles{Count: h.Count(), Mean: h.Mean() / 1e6, P50: ms(h.Quantile(0.5)), P90: ms(h.Quantile(0.9)),
		P99: ms(h.Quantile(0.99)), P999: ms(h.Quantile(0.999)), Max: ms(h.Max())}
}

// Report is the machine-readable outcome of a scenario run (-o json).
type Report struct {
	Scenario   string            `json:"scenario"`
	Target     string            `json:"target"`
	Mode       string            `json:"mode"`
	TargetRate float64           `json:"target_rate,omitempty"`
	Workers    int               `json:"workers"`
	ElapsedS   float64           `json:"elapsed_s"`
	Requests   uint64            `json:"requests"`
	OK         uint64            `json:"ok"`
	ReqPerSec  float64           `json:"requests_per_s"`
	Late       uint64            `json:"late_sends"`
	MaxLagMS   float64           `json:"max_send_lag_ms"`
	Unsent     uint64            `json:"unsent"`
	Errors     map[string]uint64 `json:"errors"`
	Latency    Percentiles       `json:"latency"`
	Service    Percentiles       `json:"service_time"`
	// Figures are scenario-specific numbers (transfers/s, fills, ...).
	Figures map[string]float64 `json:"figures,omitempty"`
	// Extra latency distributions (e.g. claims payout latency).
	Extra map[string]Percentiles `json:"extra_latency,omitempty"`
	// Checks are the correctness verdicts; Passed is false if any failed.
	Checks []Check `json:"checks,omitempty"`
	Passed bool    `json:"passed"`
}

// Check is one correctness verdict.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// NewReport fills the engine part of a report.
func NewReport(scenario, target string, r *Result) *Report {
	rep := &Report{Scenario: scenario, Target: target, Mode: r.Mode, TargetRate: r.Rate, Workers: r.Workers,
		ElapsedS: r.Elapsed.Seconds(), Requests: r.Requests, OK: r.OK, ReqPerSec: r.Throughput(), Late: r.Late,
		MaxLagMS: float64(r.MaxLag) / float64(time.Millisecond), Unsent: r.Unsent, Errors: r.Errors,
		Latency: Summarize(r.Latency), Service: Summarize(r.Service), Figures: map[string]float64{},
		Extra: map[string]Percentiles{}, Passed: true}
	if rep.Errors == nil {
		rep.Errors = map[string]uint64{}
	}
	return rep
}

// AddCheck records a verdict.
func (r *Report) AddCheck(name string, ok bool, format string, args ...any) {
	r.Checks = append(r.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
	if !ok {
		r.Passed = false
	}
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes a human-readable report.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "scenario %s against %s (%s loop", r.Scenario, r.Target, r.Mode)
	if r.Mode == "open" {
		fmt.Fprintf(w, ", target %.0f req/s", r.TargetRate)
	}
	fmt.Fprintf(w, ", %d workers)\n", r.Workers)
	fmt.Fprintf(w, "  requests  %d in %.2fs = %.1f req/s, ok %d\n", r.Requests, r.ElapsedS, r.ReqPerSec, r.OK)
	if r.Mode == "open" {
		fmt.Fprintf(w, "  schedule  %d sends late (>1ms behind), max lag %.2fms, %d unsent\n", r.Late, r.MaxLagMS, r.Unsent)
	}
	pr := func(name string, p Percentiles) {
		fmt.Fprintf(w, "  %-9s p50 %.3fms  p90 %.3fms  p99 %.3fms  p99.9 %.3fms  max %.3fms  mean %.3fms\n",
			name, p.P50, p.P90, p.P99, p.P999, p.Max, p.Mean)
	}
	pr("latency", r.Latency)
	if r.Mode == "open" {
		pr("service", r.Service)
	}
	for _, k := range sortedKeys(r.Extra) {
		pr(k, r.Extra[k])
	}
	if len(r.Errors) > 0 {
		var parts []string
		for _, k := range sortedKeys(r.Errors) {
			parts = append(parts, fmt.Sprintf("%s=%d", k, r.Errors[k]))
		}
		fmt.Fprintf(w, "  errors    %s\n", strings.Join(parts, " "))
	}
	for _, k := range sortedKeys(r.Figures) {
		fmt.Fprintf(w, "  %-28s %.2f\n", k, r.Figures[k])
	}
	for _, c := range r.Checks {
		mark := "PASS"
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  check %-4s %s: %s\n", mark, c.Name, c.Detail)
	}
	if r.Passed {
		fmt.Fprintln(w, "  result    PASSED")
	} else {
		fmt.Fprintln(w, "  result    FAILED")
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
