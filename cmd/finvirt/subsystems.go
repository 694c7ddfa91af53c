package main

// Subsystem packages register themselves with the daemon from init(); importing them here
// puts them into the binary.
import (
	_ "github.com/finvirt/finvirt/internal/daemon/instances"
)
