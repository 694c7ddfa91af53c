package engine

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"
)

// Limits keep price*quantity sums inside int64 ticks (1e10 * 1e8 = 1e18).
const (
	MaxPriceTicks = 10_000_000_000
	MaxQuantity   = 100_000_000
)

// SymbolConfig is one tradable instrument.
type SymbolConfig struct {
	Name string
	Tick decimal.Decimal // price increment, e.g. 0.01
}

// DefaultTick is the tick size of symbols listed without one.
var DefaultTick = decimal.New(1, -2)

// ParseSymbols parses "AAPL,MSFT:0.05,..." (an optional :TICK per symbol).
func ParseSymbols(s string) ([]SymbolConfig, error) {
	var out []SymbolConfig
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, tickStr, hasTick := strings.Cut(part, ":")
		tick := DefaultTick
		if hasTick {
			t, err := decimal.NewFromString(tickStr)
			if err != nil || !t.IsPositive() {
				return nil, fmt.Errorf("symbol %s: tick size %q must be a positive decimal such as 0.01", name, tickStr)
			}
			tick = t
		}
		if err := validSymbol(name); err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, fmt.Errorf("symbol %s listed twice in %q", name, s)
		}
		seen[name] = true
		out = append(out, SymbolConfig{Name: name, Tick: tick})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no symbols in %q: list at least one, e.g. AAPL,MSFT", s)
	}
	return out, nil
}

func validSymbol(name string) error {
	if name == "" || len(name) > 16 {
		return fmt.Errorf("symbol %q must be 1 to 16 characters", name)
	}
	for _, c := range name {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("symbol %q: only A-Z, 0-9, '.', '-', '_' are allowed", name)
		}
	}
	return nil
}

// symbol is a configured instrument with its price conversion.
type symbol struct {
	name  string
	tick  decimal.Decimal
	scale int32 // decimal places shown for prices
	// tick = mant * 10^-scale, so a price in ticks is ticks*mant units of
	// 10^-scale: formatting is integer arithmetic, no decimal allocation.
	mant int64
}

func newSymbol(c SymbolConfig) *symbol {
	scale := -c.Tick.Exponent()
	if scale < 0 {
		scale = 0
	}
	mant := c.Tick.Shift(scale).IntPart()
	return &symbol{name: c.Name, tick: c.Tick, scale: scale, mant: mant}
}

// parsePrice converts a decimal string into ticks, rejecting non-numbers,
// non-positive prices, prices off the tick grid and prices too large.
func (s *symbol) parsePrice(p string) (int64, *Error) {
	d, err := decimal.NewFromString(strings.TrimSpace(p))
	if err != nil || p == "" {
		return 0, errorf(CodeInvalidPrice, "price %q for %s is not a decimal number such as \"101.25\"", p, s.name)
	}
	if !d.IsPositive() {
		return 0, errorf(CodeInvalidPrice, "price %s for %s must be positive", p, s.name)
	}
	q := d.Div(s.tick)
	if !d.Mod(s.tick).IsZero() || !q.IsInteger() {
		lo := d.Div(s.tick).Floor().Mul(s.tick)
		return 0, errorf(CodePriceOffTick, "price %s for %s is not a multiple of the tick size %s (nearest below: %s)", p, s.name, s.tick, lo.StringFixed(s.scale))
	}
	if q.GreaterThan(decimal.NewFromInt(MaxPriceTicks)) {
		return 0, errorf(CodeInvalidPrice, "price %s for %s exceeds the maximum %s", p, s.name, s.formatPrice(MaxPriceTicks))
	}
	return q.IntPart(), nil
}

func (s *symbol) formatPrice(ticks int64) string {
	if s.mant <= 0 || ticks > MaxPriceTicks || ticks < 0 {
		return decimal.NewFromInt(ticks).Mul(s.tick).StringFixed(s.scale)
	}
	v := strconv.FormatInt(ticks*s.mant, 10)
	if s.scale == 0 {
		return v
	}
	k := int(s.scale)
	if len(v) <= k {
		v = strings.Repeat("0", k-len(v)+1) + v
	}
	return v[:len(v)-k] + "." + v[len(v)-k:]
}

// formatAvg renders notional/qty (in ticks) with the symbol's decimals,
// plus up to 4 more when the average falls between ticks.
func (s *symbol) formatAvg(notional, qty int64) string {
	if qty == 0 {
		return s.formatPrice(0)
	}
	if notional%qty == 0 {
		return s.formatPrice(notional / qty)
	}
	v := decimal.NewFromInt(notional).Mul(s.tick).DivRound(decimal.NewFromInt(qty), s.scale+4).StringFixed(s.scale + 4)
	return strings.TrimRight(strings.TrimRight(v, "0"), ".")
}
