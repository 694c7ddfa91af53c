package proto

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func mustEncode(t testing.TB, f Frame) []byte {
	t.Helper()
	b, err := Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTripAndResync(t *testing.T) {
	a := Frame{Type: TypeRequest, ID: 7, Payload: []byte(`{"op":"ping"}`)}
	b := Frame{Type: TypeData, Chan: ChanStdout, ID: 9, Payload: bytes.Repeat([]byte{'F', 'V', 0}, 1000)}
	c := Frame{Type: TypeEOF, Chan: ChanStdin, ID: 9}
	ea, eb, ec := mustEncode(t, a), mustEncode(t, b), mustEncode(t, c)
	corrupt := append([]byte(nil), eb...)
	corrupt[HeaderSize+5] ^= 0xff

	tests := []struct {
		name    string
		stream  []byte
		want    []Frame
		skipped bool
	}{
		{"clean", cat(ea, eb, ec), []Frame{a, b, c}, false},
		{"leading garbage", cat([]byte("xxFVzz"), ea), []Frame{a}, true},
		{"tail of an old frame", cat(eb[100:], ea, ec), []Frame{a, c}, true},
		{"corrupt payload skipped", cat(ea, corrupt, ec), []Frame{a, c}, true},
		{"truncated tail", cat(ea, eb[:50]), []Frame{a}, false},
		{"bogus huge length", cat([]byte{'F', 'V', TypeData, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, ec), []Frame{c}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(bytes.NewReader(tc.stream))
			var got []Frame
			for {
				f, err := d.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, f)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d frames, want %d", len(got), len(tc.want))
			}
			for i := range got {
				g, w := got[i], tc.want[i]
				if g.Type != w.Type || g.Chan != w.Chan || g.ID != w.ID || !bytes.Equal(g.Payload, w.Payload) {
					t.Fatalf("frame %d = %+v, want %+v", i, g, w)
				}
			}
			if (d.Skipped() > 0) != tc.skipped {
				t.Fatalf("skipped %d bytes, want skipping=%v", d.Skipped(), tc.skipped)
			}
		})
	}
}

func TestEncodeRejects(t *testing.T) {
	if _, err := Encode(Frame{Type: TypeData, Payload: make([]byte, MaxPayload+1)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized payload: err = %v", err)
	}
	if _, err := Encode(Frame{Type: 0}); err == nil {
		t.Fatal("type 0 accepted")
	}
	if _, err := Encode(Frame{Type: 99}); err == nil {
		t.Fatal("type 99 accepted")
	}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// FuzzDecoder feeds arbitrary streams to the decoder: it must never panic, never return a frame
// that does not re-encode to the same bytes, and always terminate.
func FuzzDecoder(f *testing.F) {
	f.Add(mustEncode(f, Frame{Type: TypeRequest, ID: 1, Payload: []byte(`{"op":"hello","nonce":"x"}`)}))
	f.Add(cat([]byte("FV"), mustEncode(f, Frame{Type: TypeEOF, ID: 3})))
	f.Add([]byte{'F', 'V', 3, 1, 0, 0, 0, 1, 0, 0, 0x7f, 0xf0, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(bytes.NewReader(data))
		for i := 0; i <= len(data); i++ {
			fr, err := d.Next()
			if err != nil {
				return
			}
			if len(fr.Payload) > MaxPayload {
				t.Fatalf("payload %d over limit", len(fr.Payload))
			}
			enc, err := Encode(fr)
			if err != nil {
				t.Fatalf("decoded frame does not re-encode: %v", err)
			}
			if !bytes.Contains(data, enc) {
				t.Fatal("decoded frame is not present in the input")
			}
		}
		t.Fatal("decoder returned more frames than input bytes")
	})
}

// eofReader returns its chunks in turn, with an io.EOF between them, like a virtio port whose
// host goes away and comes back.
type eofReader struct {
	chunks [][]byte
	eof    bool
}

func (r *eofReader) Read(p []byte) (int, error) {
	if r.eof || len(r.chunks) == 0 {
		r.eof = false
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	if len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
		r.eof = true
	}
	return n, nil
}

func TestFrameSurvivesEOF(t *testing.T) {
	f := Frame{Type: TypeRequest, ID: 3, Payload: []byte(`{"op":"ping"}`)}
	enc := mustEncode(t, f)
	d := NewDecoder(&eofReader{chunks: [][]byte{enc[:5], enc[5:20], enc[20:]}})
	eofs := 0
	for {
		got, err := d.Next()
		if err == io.EOF {
			if eofs++; eofs > 5 {
				t.Fatal("frame split by EOFs was never decoded")
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != 3 || !bytes.Equal(got.Payload, f.Payload) {
			t.Fatalf("got %+v", got)
		}
		return
	}
}
