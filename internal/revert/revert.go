// Package revert undoes the completed steps of a multi-step change when a later step fails,
// so that no half-created object is left behind (the pattern of Incus's shared/revert).
//
//	r := revert.New()
//	defer r.Fail()
//	createA(); r.Add(deleteA)
//	createB(); r.Add(deleteB)
//	r.Success() // keep A and B
package revert

import "sync"

// Reverter collects undo functions and runs them in reverse order unless Success is called.
type Reverter struct {
	mu   sync.Mutex
	undo []func()
	done bool
}

// New returns an empty Reverter.
func New() *Reverter { return &Reverter{} }

// Add registers an undo step; steps run last-added first.
func (r *Reverter) Add(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.undo = append(r.undo, f)
}

// Fail runs the undo steps, newest first, unless Success was called. Safe to call twice.
func (r *Reverter) Fail() {
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return
	}
	r.done = true
	undo := r.undo
	r.undo = nil
	r.mu.Unlock()
	for i := len(undo) - 1; i >= 0; i-- {
		undo[i]()
	}
}

// Success drops the undo steps: the change is complete and must stay.
func (r *Reverter) Success() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = true
	r.undo = nil
}

// Clone hands the pending undo steps to a new Reverter and clears this one, for a caller that
// finishes the change later (for example in an asynchronous operation).
func (r *Reverter) Clone() *Reverter {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := &Reverter{undo: r.undo}
	r.undo = nil
	r.done = true
	return c
}
