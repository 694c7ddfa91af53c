package image

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The Linux kernel compresses its payload with the LZ4 "legacy" frame format (lz4 -l): a magic
// 0x184C2102 followed by blocks, each a little-endian uint32 compressed size and an LZ4 block
// that decompresses to at most 8 MiB. The kernel build appends the uncompressed size as a
// trailing uint32, which we use to size the output and verify it.

const (
	lz4LegacyMagic    = 0x184C2102
	lz4LegacyBlockMax = 8 << 20
)

var errLZ4Corrupt = errors.New("lz4: corrupt block")

// decodeLZ4Legacy decompresses a legacy-frame stream. want, when non-zero, is the expected
// uncompressed size; the stream must produce exactly that many bytes.
func decodeLZ4Legacy(src []byte, want int) ([]byte, error) {
	if len(src) < 4 || binary.LittleEndian.Uint32(src) != lz4LegacyMagic {
		return nil, errors.New("lz4: missing legacy frame magic 02 21 4c 18")
	}
	const maxOut = 1 << 30
	if want < 0 || want > maxOut {
		return nil, fmt.Errorf("lz4: implausible uncompressed size %d", want)
	}
	out := make([]byte, 0, want)
	p := 4
	for p < len(src) {
		if len(src)-p < 4 {
			return nil, fmt.Errorf("lz4: truncated block header at offset %d", p)
		}
		n := int(binary.LittleEndian.Uint32(src[p:]))
		p += 4
		if n == lz4LegacyMagic { // concatenated legacy streams restart with the magic
			continue
		}
		if n > len(src)-p {
			return nil, fmt.Errorf("lz4: block at offset %d claims %d bytes, only %d remain (truncated image?)", p-4, n, len(src)-p)
		}
		var err error
		out, err = lz4Block(out, src[p:p+n], lz4LegacyBlockMax)
		if err != nil {
			return nil, fmt.Errorf("%w at offset %d", err, p)
		}
		if len(out) > maxOut {
			return nil, errors.New("lz4: output exceeds 1 GiB")
		}
		p += n
	}
	if want != 0 && len(out) != want {
		return nil, fmt.Errorf("lz4: decompressed %d bytes, header says %d (truncated or corrupt image)", len(out), want)
	}
	return out, nil
}

// lz4Block appends the decompression of one LZ4 block to dst, producing at most limit bytes.
func lz4Block(dst, src []byte, limit int) ([]byte, error) {
	start := len(dst)
	i := 0
	for i < len(src) {
		tok := src[i]
		i++
		// Literals.
		lit := int(tok >> 4)
		if lit == 15 {
			for {
				if i >= len(src) {
					return nil, errLZ4Corrupt
				}
				b := src[i]
				i++
				lit += int(b)
				if b != 255 {
					break
				}
			}
		}
		if lit > len(src)-i || len(dst)-start+lit > limit {
			return nil, errLZ4Corrupt
		}
		dst = append(dst, src[i:i+lit]...)
		i += lit
		if i == len(src) { // the last sequence has literals only
			return dst, nil
		}
		// Match.
		if len(src)-i < 2 {
			return nil, errLZ4Corrupt
		}
		off := int(src[i]) | int(src[i+1])<<8
		i += 2
		if off == 0 || off > len(dst)-start {
			return nil, errLZ4Corrupt
		}
		ml := int(tok & 15)
		if ml == 15 {
			for {
				if i >= len(src) {
					return nil, errLZ4Corrupt
				}
				b := src[i]
				i++
				ml += int(b)
				if b != 255 {
					break
				}
			}
		}
		ml += 4
		if len(dst)-start+ml > limit {
			return nil, errLZ4Corrupt
		}
		pos := len(dst) - off
		if off >= ml {
			dst = append(dst, dst[pos:pos+ml]...)
		} else {
			for k := 0; k < ml; k++ { // overlapping copy repeats the pattern
				dst = append(dst, dst[pos+k])
			}
		}
	}
	return nil, errLZ4Corrupt // a block cannot end with a match
}
