package main

// The network subsystem (networks, ACLs, NICs, segmentation report) registers its API
// routes with the daemon.
import _ "github.com/finvirt/finvirt/internal/daemon/networks"
