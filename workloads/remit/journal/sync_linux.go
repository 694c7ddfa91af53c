package journal

import (
	"os"
	"syscall"
)

// datasync flushes file data (and only the metadata needed to read it back).
// Segments are preallocated with zeros, so ordinary appends change no
// metadata and fdatasync is a pure data flush — measured 2-4x lower p50/p99
// than fsync of a growing file on the 2-core VM.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
