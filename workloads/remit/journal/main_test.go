package journal

import (
	"os"
	"testing"
)

// Small preallocation chunks keep the tests fast and exercise the growth path often.
func TestMain(m *testing.M) {
	PreallocChunk = 256 << 10
	os.Exit(m.Run())
}
