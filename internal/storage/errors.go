package storage

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel kinds. Every error returned by a pool wraps exactly one of them, so the daemon can map
// them to HTTP statuses with errors.Is (404, 409, 409, 400, 501).
var (
	ErrNotFound    = errors.New("not found")
	ErrExists      = errors.New("already exists")
	ErrInUse       = errors.New("in use")
	ErrInvalid     = errors.New("invalid")
	ErrUnsupported = errors.New("not supported")
)

// Error is the typed error of this package: what kind, which object, what went wrong, and how to
// fix it. Dependents lists the objects that block an operation (clones, attached instances).
type Error struct {
	Kind       error
	Object     string
	Msg        string
	Fix        string
	Dependents []string
	Err        error // underlying cause, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Object != "" {
		b.WriteString(e.Object)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if len(e.Dependents) > 0 {
		b.WriteString(" (dependents: ")
		b.WriteString(strings.Join(e.Dependents, ", "))
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.Fix != "" {
		b.WriteString("; ")
		b.WriteString(e.Fix)
	}
	return b.String()
}

// Unwrap exposes both the kind and the cause to errors.Is / errors.As.
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

// Errorf builds an *Error of the given kind for object, with a formatted message and a fix hint.
func Errorf(kind error, object, fix, format string, args ...any) error {
	return &Error{Kind: kind, Object: object, Msg: fmt.Sprintf(format, args...), Fix: fix}
}

// Wrap builds an *Error of the given kind around a cause.
func Wrap(kind error, object string, cause error, fix, format string, args ...any) error {
	return &Error{Kind: kind, Object: object, Msg: fmt.Sprintf(format, args...), Fix: fix, Err: cause}
}

// NotFound is the common "no such volume/snapshot/pool" error.
func NotFound(kind, name string) error {
	return Errorf(ErrNotFound, fmt.Sprintf("%s %q", kind, name), "check the name with the list command", "does not exist")
}

// Exists is the common "name taken" error.
func Exists(kind, name string) error {
	return Errorf(ErrExists, fmt.Sprintf("%s %q", kind, name), "choose another name or delete the existing one first", "already exists")
}
