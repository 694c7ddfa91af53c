package main

// The storage subsystem (pools and volumes) registers its API routes with the daemon.
import _ "github.com/finvirt/finvirt/internal/daemon/pools"
