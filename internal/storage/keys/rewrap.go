package keys

// Rewrap re-seals a wrapped volume key from old to new. A key already wrapped by new is
// returned unchanged (changed = false), so an interrupted rotation can simply be run again.
func Rewrap(old, new *Master, wrapped, aad string) (out string, changed bool, err error) {
	if _, err := new.Unwrap(wrapped, aad); err == nil {
		return wrapped, false, nil
	}
	key, err := old.Unwrap(wrapped, aad)
	if err != nil {
		return "", false, err
	}
	out, err = new.Wrap(key, aad)
	return out, err == nil, err
}
