// Package qmp is a small client for the QEMU Machine Protocol: JSON objects over a unix socket,
// one per line. It does the greeting and capabilities negotiation, matches replies to commands
// by id, and fans out asynchronous events (which QEMU may send between any two replies) to
// subscribers.
package qmp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Error is a QMP error reply ({"error": {"class": ..., "desc": ...}}).
type Error struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *Error) Error() string { return fmt.Sprintf("qmp %s: %s", e.Class, e.Desc) }

// Event is an asynchronous QMP event.
type Event struct {
	Name string          `json:"event"`
	Data json.RawMessage `json:"data,omitempty"`
	Time time.Time       `json:"-"`
}

// Version is the QEMU version announced in the greeting.
type Version struct {
	Major, Minor, Micro int
	Package             string
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro) }

// Message is one decoded QMP server message: exactly one of Greeting, Event or a reply
// (Return or Err) is set.
type Message struct {
	Greeting *Version
	Event    *Event
	ID       string          // id of the command a reply answers ("" if the command had none)
	Return   json.RawMessage // reply payload (may be {} or [])
	Err      *Error
}

// IsReply tells whether m answers a command.
func (m *Message) IsReply() bool { return m.Return != nil || m.Err != nil }

type wireMsg struct {
	QMP *struct {
		Version struct {
			QEMU struct {
				Major int `json:"major"`
				Minor int `json:"minor"`
				Micro int `json:"micro"`
			} `json:"qemu"`
			Package string `json:"package"`
		} `json:"version"`
	} `json:"QMP"`
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Timestamp *struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
	ID     json.RawMessage `json:"id"`
	Return json.RawMessage `json:"return"`
	Error  *Error          `json:"error"`
}

// ErrMalformed marks a line that is not a QMP message.
var ErrMalformed = errors.New("malformed QMP message")

// Decode parses one QMP line. It rejects anything that is not exactly one of the three message
// kinds, so a confused peer is reported instead of silently misread.
func Decode(line []byte) (*Message, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object: %.60q", ErrMalformed, line)
	}
	var w wireMsg
	if err := json.Unmarshal(line, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	kinds := 0
	m := &Message{}
	if w.QMP != nil {
		kinds++
		v := w.QMP.Version
		m.Greeting = &Version{Major: v.QEMU.Major, Minor: v.QEMU.Minor, Micro: v.QEMU.Micro, Package: v.Package}
	}
	if w.Event != "" {
		kinds++
		ev := &Event{Name: w.Event, Data: w.Data}
		if w.Timestamp != nil && w.Timestamp.Seconds >= 0 && w.Timestamp.Microseconds >= 0 && w.Timestamp.Microseconds < 1e6 {
			ev.Time = time.Unix(w.Timestamp.Seconds, w.Timestamp.Microseconds*1000)
		}
		m.Event = ev
	}
	if isPresent(w.Return) || w.Error != nil {
		kinds++
		if isPresent(w.Return) && w.Error != nil {
			return nil, fmt.Errorf("%w: reply has both return and error", ErrMalformed)
		}
		if w.Error != nil {
			m.Err = w.Error
		} else {
			m.Return = w.Return
		}
		if isPresent(w.ID) {
			var s string
			if err := json.Unmarshal(w.ID, &s); err != nil {
				// We only ever send string ids; any other id cannot be ours.
				return nil, fmt.Errorf("%w: reply id %s is not a string", ErrMalformed, w.ID)
			}
			m.ID = s
		}
	}
	if kinds != 1 {
		return nil, fmt.Errorf("%w: expected exactly one of greeting, event or reply: %.80q", ErrMalformed, line)
	}
	return m, nil
}

func isPresent(r json.RawMessage) bool { return len(r) > 0 && !bytes.Equal(r, []byte("null")) }
