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
// its offset. It returns the length of the valid prefix. If lastSegment, an
// incomplete final record is reported as torn (valid < len(data), err nil);
// otherwise it is corruption.
func Scan(name string, data []byte, lastSegment bool, fn func(off int64, payload []byte) error) (valid int64, torn bool, err error) {
	off := 0
	for off < len(data) {
		rest := len(data) - off
		tornHere := func(reason string) (int64, bool, error) {
			if lastSegment {
				return int64(off), true, nil
			}
			return int64(off), false, &CorruptError{File: name, Offset: int64(off), Reason: reason}
		}
		if rest < HeaderSize {
			return tornHere("incomplete record header")
		}
		n := int(binary.LittleEndian.Uint32(data[off:]))
		sum := binary.LittleEndian.Uint32(data[off+4:])
		if n == 0 {
			if allZero(data[off:]) {
				return tornHere("zero-filled tail")
			}
			return int64(off), false, &CorruptError{File: name, Offset: int64(off), Reason: "zero record length followed by data"}
		}
		if n > MaxRecord || n > rest-HeaderSize {
			// A record that claims to run past the end of the file is what a
			// crash in the middle of an append looks like.
			if n > rest-HeaderSize {
				return tornHere(fmt.Sprintf("record of %d bytes runs past the end of the file", n))
			}
			return int64(off), false, &CorruptError{File: name, Offset: int64(off), Reason: fmt.Sprintf("record length %d exceeds the maximum", n)}
		}
		payload := data[off+HeaderSize : off+HeaderSize+n]
		if crc32.Checksum(payload, castagnoli) != sum {
			if off+HeaderSize+n == len(data) {
				return tornHere("checksum mismatch in the final record")
			}
			return int64(off), false, &CorruptError{File: name, Offset: int64(off), Reason: "CRC32C checksum mismatch"}
		}
		if err := fn(int64(off), payload); err != nil {
			return int64(off), false, err
		}
		off += HeaderSize + n
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
