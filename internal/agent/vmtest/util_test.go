package vmtest

import (
	"encoding/hex"
	"fmt"
)

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

func hexs(b []byte) string { return hex.EncodeToString(b) }
