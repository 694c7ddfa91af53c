package engine

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/finvirt/finvirt/workloads/trade/book"
)

// Command kinds as journaled.
const (
	CmdPlace uint8 = iota + 1
	CmdCancel
	CmdReplace
)

const commandVersion = 1

// Command is one accepted command exactly as journaled: everything replay
// needs to reproduce the live engine, including the assigned order id and
// the time stamp, so replay is deterministic.
type Command struct {
	Kind     uint8
	OrderID  uint64
	TimeNano int64
	Symbol   string
	// Place
	ClientID string
	Account  string
	Origin   string // "" for HTTP, FIX session namespace otherwise
	Side     book.Side
	Type     book.OrdType
	TIF      book.TIF
	Price    int64
	Qty      int64
	// Replace: Price, Qty. Cancel and replace: an optional new client order
	// id (FIX ClOrdID of the request).
	NewClientID string
}

// Encode appends the binary form of c to dst.
func (c *Command) Encode(dst []byte) []byte {
	dst = append(dst, commandVersion, c.Kind)
	dst = binary.AppendUvarint(dst, c.OrderID)
	dst = binary.AppendVarint(dst, c.TimeNano)
	dst = appendString(dst, c.Symbol)
	switch c.Kind {
	case CmdPlace:
		dst = appendString(dst, c.ClientID)
		dst = appendString(dst, c.Account)
		dst = appendString(dst, c.Origin)
		dst = append(dst, byte(c.Side), byte(c.Type), byte(c.TIF))
		dst = binary.AppendVarint(dst, c.Price)
		dst = binary.AppendVarint(dst, c.Qty)
	case CmdCancel:
		dst = appendString(dst, c.NewClientID)
	case CmdReplace:
		dst = binary.AppendVarint(dst, c.Price)
		dst = binary.AppendVarint(dst, c.Qty)
		dst = appendString(dst, c.NewClientID)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

var errShort = errors.New("truncated command")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) || n > 1024 {
		d.err = errShort
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errShort
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// DecodeCommand parses one journal payload.
func DecodeCommand(p []byte) (Command, error) {
	var c Command
	d := decoder{b: p}
	if v := d.byte(); d.err == nil && v != commandVersion {
		return c, fmt.Errorf("command version %d unsupported (this binary reads %d)", v, commandVersion)
	}
	c.Kind = d.byte()
	c.OrderID = d.uvarint()
	c.TimeNano = d.varint()
	c.Symbol = d.str()
	switch c.Kind {
	case CmdPlace:
		c.ClientID = d.str()
		c.Account = d.str()
		c.Origin = d.str()
		c.Side, c.Type, c.TIF = book.Side(d.byte()), book.OrdType(d.byte()), book.TIF(d.byte())
		c.Price = d.varint()
		c.Qty = d.varint()
		if d.err == nil && (c.Side > book.Sell || c.Type > book.Market || c.TIF > book.FOK) {
			return c, fmt.Errorf("command for order %d: side/type/tif out of range", c.OrderID)
		}
	case CmdCancel:
		c.NewClientID = d.str()
	case CmdReplace:
		c.Price = d.varint()
		c.Qty = d.varint()
		c.NewClientID = d.str()
	default:
		if d.err == nil {
			return c, fmt.Errorf("command kind %d unknown", c.Kind)
		}
	}
	if d.err != nil {
		return c, d.err
	}
	if len(d.b) != 0 {
		return c, fmt.Errorf("command for order %d: %d trailing bytes", c.OrderID, len(d.b))
	}
	return c, nil
}
