package qemu

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// startTPM runs swtpm for a full guest: its own session and process group like QEMU, state in
// the instance directory, --terminate so it ends when QEMU drops the control channel.
func startTPM(ctx context.Context, l Layout) error {
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		return fmt.Errorf("tpm requested but swtpm is not installed (apt-get install swtpm): %w", err)
	}
	stopTPM(l)
	logf, err := os.OpenFile(l.Dir+"/swtpm.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "socket", "--tpm2", "--tpmstate", "dir="+l.TPMDir,
		"--ctrl", "type=unixio,path="+l.TPMSock, "--pid", "file="+l.TPMPID, "--terminate")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start swtpm: %w", err)
	}
	go cmd.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, err := os.Stat(l.TPMSock); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	return fmt.Errorf("swtpm did not create %s within 20 s: %s", l.TPMSock, logTail(l.Dir+"/swtpm.log", 3))
}

// stopTPM kills the instance's swtpm, if its pidfile names one that is really ours.
func stopTPM(l Layout) {
	pid := readPIDFile(l.TPMPID)
	if pid > 0 && isOurQEMU(pid, l.Dir) { // same check: its argv names the instance dir
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	os.Remove(l.TPMPID)
}
