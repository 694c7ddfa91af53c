// Package journal is remit's write-ahead log: numbered segment files of
// length+CRC32C framed records, plus atomically written snapshots. One record
// is one state-machine batch and is made durable with one fsync (group
// commit). Recovery distinguishes a torn tail (the last record of the last
// segment was cut by a crash: truncated and forgotten, it was never
// acknowledged) from corruption anywhere else (a hard error naming the file
// and offset, because silently dropping acknowledged transfers is worse than
// refusing to start).
package journal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// HeaderSize is the per-record framing: uint32 payload length, uint32 CRC32C of the payload (little endian).
const HeaderSize = 8

// MaxRecord bounds a record so a garbage length cannot make recovery allocate wildly.
const MaxRecord = 256 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BeginRecord reserves a header at the end of b; append the payload, then call FinishRecord.
func BeginRecord(b []byte) ([]byte, int) {
	start := len(b)
	return append(b, make([]byte, HeaderSize)...), start
}

// FinishRecord fills in the header of the record that starts at start.
func FinishRecord(b []byte, start int) {
	payload := b[start+HeaderSize:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(payload, castagnoli))
}

// CorruptError is a record that failed its checks somewhere other than the torn tail.
type CorruptError struct {
	File   string
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("journal %s is corrupt at offset %d: %s; restore the data directory from a backup or move the file away to inspect it", e.File, e.Offset, e.Reason)
}

// Scan walks the framed records in data, calling fn with each payload and
// its offset, and returns the length of the valid prefix. Segments are
// preallocated with zeros, so an all-zero remainder is free space, not damage.
// In the last segment, an incomplete or checksum-failing record followed only
// by zeros (or by the end of the file) is a torn append: torn is true and
// valid is where it starts. Anything else is a *CorruptError.
func Scan(name string, data []byte, lastSegment bool, fn func(off int64, payload []byte) error) (valid int64, torn bool, err error) {
	off := 0
	for off < len(data) {
		if allZero(data[off:]) {
			return int64(off), false, nil // preallocated, never written
		}
		rest := len(data) - off
		// tail reports a defective record starting at off whose remainder
		// after end is all zeros: a torn append in the last segment.
		tail := func(end int, reason string) (int64, bool, error) {
			if lastSegment && (end >= len(data) || allZero(data[end:])) {
				return int64(off), true, nil
			}
			return int64(off), false, &CorruptError{File: name, Offset: int64(off), Reason: reason}
		}
		if rest < HeaderSize {
			return tail(len(data), "incomplete record header")
		}
		n := int(binary.LittleEndian.Uint32(data[off:]))
		sum := binary.LittleEndian.Uint32(data[off+4:])
		if n == 0 {
			return tail(off+HeaderSize, "zero record length followed by data")
		}
		if n > MaxRecord {
			return int64(off), false, &CorruptError{File: name, Offset: int64(off), Reason: fmt.Sprintf("record length %d exceeds the maximum", n)}
		}
		if n > rest-HeaderSize {
			// a record that runs past the end of the file is a cut append
			return tail(len(data), fmt.Sprintf("record of %d bytes runs past the end of the file", n))
		}
		end := off + HeaderSize + n
		if crc32.Checksum(data[off+HeaderSize:end], castagnoli) != sum {
			return tail(end, "CRC32C checksum mismatch")
		}
		if err := fn(int64(off), data[off+HeaderSize:end]); err != nil {
			return int64(off), false, err
		}
		off = end
	}
	return int64(off), false, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
