package journal

import (
	"bufio"
	"encoding/binary"
	"hash/crc32"
	"io"
)

// reader yields intact records from a stream; it reports !ok at EOF and at
// the first torn or corrupt record alike, because after a crash both mean
// "the log ends here".
type reader struct {
	r   *bufio.Reader
	buf []byte
}

func newReader(r io.Reader) *reader {
	return &reader{r: bufio.NewReaderSize(r, 1<<16)}
}

func (r *reader) next() ([]byte, bool) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r.r, h[:]); err != nil {
		return nil, false
	}
	n := binary.LittleEndian.Uint32(h[:])
	sum := binary.LittleEndian.Uint32(h[4:])
	if n > MaxRecord {
		return nil, false
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	p := r.buf[:n]
	if _, err := io.ReadFull(r.r, p); err != nil {
		return nil, false
	}
	if crc32.Checksum(p, castagnoli) != sum {
		return nil, false
	}
	return p, true
}
