package qmp

import (
	"errors"
	"testing"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
		check   func(t *testing.T, m *Message)
	}{
		{name: "greeting", in: `{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2"}, "capabilities": ["oob"]}}`,
			check: func(t *testing.T, m *Message) {
				if m.Greeting == nil || m.Greeting.String() != "7.2.22" || m.Greeting.Package != "Debian 1:7.2" {
					t.Fatalf("greeting = %+v", m.Greeting)
				}
			}},
		{name: "return empty", in: `{"return": {}, "id": "7"}`,
			check: func(t *testing.T, m *Message) {
				if !m.IsReply() || m.ID != "7" || string(m.Return) != "{}" || m.Err != nil {
					t.Fatalf("reply = %+v", m)
				}
			}},
		{name: "return list no id", in: `{"return": []}`,
			check: func(t *testing.T, m *Message) {
				if !m.IsReply() || m.ID != "" || string(m.Return) != "[]" {
					t.Fatalf("reply = %+v", m)
				}
			}},
		{name: "error", in: `{"id": "3", "error": {"class": "GenericError", "desc": "Device 'x' not found"}}`,
			check: func(t *testing.T, m *Message) {
				if m.Err == nil || m.Err.Class != "GenericError" || m.ID != "3" || m.Err.Error() != "qmp GenericError: Device 'x' not found" {
					t.Fatalf("error reply = %+v", m)
				}
			}},
		{name: "event", in: `{"timestamp": {"seconds": 1700000000, "microseconds": 250000}, "event": "STOP"}`,
			check: func(t *testing.T, m *Message) {
				if m.Event == nil || m.Event.Name != "STOP" || m.Event.Time.UnixMilli() != 1700000000250 {
					t.Fatalf("event = %+v", m.Event)
				}
			}},
		{name: "event with data", in: `{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "DEVICE_DELETED", "data": {"path": "/machine/peripheral/disk-a", "device": "disk-a"}}`,
			check: func(t *testing.T, m *Message) {
				if m.Event == nil || m.Event.Name != "DEVICE_DELETED" || len(m.Event.Data) == 0 {
					t.Fatalf("event = %+v", m.Event)
				}
			}},
		{name: "empty", in: ``, wantErr: true},
		{name: "array", in: `[1,2]`, wantErr: true},
		{name: "bad json", in: `{"return": `, wantErr: true},
		{name: "unknown object", in: `{"foo": 1}`, wantErr: true},
		{name: "return and error", in: `{"return": {}, "error": {"class": "X", "desc": "y"}}`, wantErr: true},
		{name: "event and reply", in: `{"event": "STOP", "return": {}}`, wantErr: true},
		{name: "numeric id", in: `{"return": {}, "id": 5}`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode([]byte(tc.in))
			if tc.wantErr {
				if err == nil || !errors.Is(err, ErrMalformed) {
					t.Fatalf("Decode(%q) = %+v, %v; want ErrMalformed", tc.in, m, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode(%q): %v", tc.in, err)
			}
			tc.check(t, m)
		})
	}
}

// FuzzDecode checks that Decode never panics and that whatever it accepts is exactly one kind
// of message.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}`,
		`{"return": {}, "id": "1"}`,
		`{"error": {"class": "CommandNotFound", "desc": "x"}, "id": "2"}`,
		`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if m != nil {
				t.Fatalf("message with error")
			}
			return
		}
		kinds := 0
		if m.Greeting != nil {
			kinds++
		}
		if m.Event != nil {
			kinds++
			if m.Event.Name == "" {
				t.Fatalf("event without a name")
			}
		}
		if m.IsReply() {
			kinds++
			if m.Return != nil && m.Err != nil {
				t.Fatalf("reply with both return and error")
			}
		}
		if kinds != 1 {
			t.Fatalf("accepted %q as %d kinds", b, kinds)
		}
	})
}
