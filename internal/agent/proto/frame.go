// Package proto is the wire format between the finvirt host daemon and the guest agent over a
// virtio-serial port.
//
// A virtio-serial port is a byte stream that survives host disconnects: when the host side
// closes mid-frame, the tail of a frame can arrive at the next connection, and a blocked guest
// write completes into whichever host connects next. The format is therefore
// self-synchronising: every frame starts with a magic, carries its length and a CRC-32 over
// header and payload, and a decoder that meets garbage skips forward to the next valid frame
// instead of failing the whole connection. Frames are small (MaxPayload) so that one frame is
// one write(2) on the port, which the guest kernel queues as one buffer.
//
// Frame layout (big endian):
//
//	0  2  magic "FV"
//	2  1  type (TypeRequest, TypeResponse, TypeData, TypeEOF, TypeWindow, TypeCancel)
//	3  1  channel (ChanStdin, ChanStdout, ChanStderr) for data/EOF/window frames
//	4  4  request id (streams are multiplexed by request id)
//	8  4  payload length
//	12 4  CRC-32 (IEEE) over bytes 0..11 and the payload
//	16 .. payload
package proto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Frame types.
const (
	TypeRequest  uint8 = 1 // JSON Request from host to agent, opens request id
	TypeResponse uint8 = 2 // JSON Response, closes request id
	TypeData     uint8 = 3 // raw stream bytes on Chan
	TypeEOF      uint8 = 4 // end of stream on Chan
	TypeWindow   uint8 = 5 // flow-control credit: payload is a uint32 count of data frames consumed
	TypeCancel   uint8 = 6 // host abandons the request (context cancelled)
	typeMax            = TypeCancel
)

// Stream channels.
const (
	ChanNone   uint8 = 0
	ChanStdin  uint8 = 0 // host -> guest (exec stdin, push data)
	ChanStdout uint8 = 1 // guest -> host (exec stdout, pull data)
	ChanStderr uint8 = 2 // guest -> host (exec stderr)
)

const (
	// HeaderSize is the fixed frame header length.
	HeaderSize = 16
	// MaxPayload bounds a frame so that it fits in one virtio-serial write (the guest driver
	// caps a write at 32 KiB).
	MaxPayload = 32*1024 - HeaderSize
	magic0     = 'F'
	magic1     = 'V'
)

// Frame is one decoded frame. Payload aliases no decoder buffer: it is owned by the caller.
type Frame struct {
	Type    uint8
	Chan    uint8
	ID      uint32
	Payload []byte
}

// ErrTooLarge is returned by Encode for a payload over MaxPayload.
var ErrTooLarge = errors.New("proto: frame payload exceeds MaxPayload")

// Encode returns the wire form of f.
func Encode(f Frame) ([]byte, error) {
	if len(f.Payload) > MaxPayload {
		return nil, fmt.Errorf("%w (%d > %d bytes)", ErrTooLarge, len(f.Payload), MaxPayload)
	}
	if f.Type == 0 || f.Type > typeMax {
		return nil, fmt.Errorf("proto: unknown frame type %d", f.Type)
	}
	b := make([]byte, HeaderSize+len(f.Payload))
	b[0], b[1], b[2], b[3] = magic0, magic1, f.Type, f.Chan
	binary.BigEndian.PutUint32(b[4:], f.ID)
	binary.BigEndian.PutUint32(b[8:], uint32(len(f.Payload)))
	copy(b[HeaderSize:], f.Payload)
	binary.BigEndian.PutUint32(b[12:], checksum(b[:12], b[HeaderSize:]))
	return b, nil
}

func checksum(hdr, payload []byte) uint32 {
	c := crc32.NewIEEE()
	c.Write(hdr)
	c.Write(payload)
	return c.Sum32()
}

// Decoder reads frames from a byte stream, resynchronising past corrupt or truncated data.
type Decoder struct {
	r       *bufio.Reader
	skipped int64
}

// NewDecoder returns a Decoder reading from r.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: bufio.NewReaderSize(r, HeaderSize+MaxPayload)}
}

// Skipped reports how many bytes were discarded while resynchronising (for diagnostics).
func (d *Decoder) Skipped() int64 { return d.skipped }

// Next returns the next valid frame. It returns io.EOF (or the reader's error) when the stream
// ends; bytes that do not form a valid frame are skipped, never returned. After EOF, Next may
// be called again: it reads on, keeping any partial frame it holds.
func (d *Decoder) Next() (Frame, error) {
	for {
		// On EOF a partial frame stays buffered: a virtio port reports EOF while the host is
		// away, and the rest of the frame (or the next host's resync preamble) follows.
		hdr, err := d.r.Peek(HeaderSize)
		if err != nil {
			return Frame{}, err
		}
		if hdr[0] != magic0 || hdr[1] != magic1 || hdr[2] == 0 || hdr[2] > typeMax {
			d.resync()
			continue
		}
		n := binary.BigEndian.Uint32(hdr[8:])
		if n > MaxPayload {
			d.resync()
			continue
		}
		want := binary.BigEndian.Uint32(hdr[12:])
		full, err := d.r.Peek(HeaderSize + int(n))
		if err != nil {
			return Frame{}, err
		}
		if checksum(full[:12], full[HeaderSize:]) != want {
			d.resync()
			continue
		}
		f := Frame{Type: full[2], Chan: full[3], ID: binary.BigEndian.Uint32(full[4:])}
		if n > 0 {
			f.Payload = append([]byte(nil), full[HeaderSize:]...)
		}
		d.r.Discard(len(full))
		return f, nil
	}
}

// resync drops the byte at the current position and everything up to the next magic start.
// It scans whole buffers (the resync preamble is 32 KiB, and the guest runs this under TCG).
func (d *Decoder) resync() {
	d.r.Discard(1)
	d.skipped++
	for {
		if d.r.Buffered() == 0 {
			if _, err := d.r.Peek(1); err != nil {
				return
			}
		}
		b, _ := d.r.Peek(d.r.Buffered())
		if i := bytes.IndexByte(b, magic0); i >= 0 {
			d.r.Discard(i)
			d.skipped += int64(i)
			return
		}
		d.r.Discard(len(b))
		d.skipped += int64(len(b))
	}
}
