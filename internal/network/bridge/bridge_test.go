package bridge_test

import (
	"testing"

	_ "github.com/finvirt/finvirt/internal/network/bridge"
	"github.com/finvirt/finvirt/internal/network/nettest"
)

func TestConformance(t *testing.T) {
	nettest.RunSuite(t, nettest.Config{Driver: "bridge"})
}
