package qemu

import (
	"testing"

	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/compute/computetest"
)

func TestConformance(t *testing.T) {
	computetest.Run(t, computetest.Harness{
		New: func(t *testing.T, dir string) compute.Driver {
			d, err := compute.Load("qemu", compute.WithStateDir(dir), compute.WithAccel("tcg"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			return d
		},
		Spec:     func(t *testing.T, name string) compute.Spec { return applianceSpec(t, name, "") },
		StateDir: func(t *testing.T) string { return stateDir(t) },
	})
}
