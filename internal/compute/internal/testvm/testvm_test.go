package testvm

import "testing"

func TestBuild(t *testing.T) {
	k, i := Vmlinux(t), Initrd(t)
	t.Logf("kernel %s initrd %s", k, i)
}
