package pgtest

import (
	"os/exec"
	"runtime"
	"syscall"
)

// startTied starts a server that dies with the test process, however
// that ends (a panic, a timeout's SIGQUIT, a kill): the kernel sends it
// SIGKILL when the thread that started it exits (PR_SET_PDEATHSIG).
// That thread is locked to a goroutine that stays blocked until done
// is closed (after the server was stopped), so it exits only then or
// with the process. PostgreSQL's backends end when their postmaster
// dies. Without this every test binary that timed out left its
// servers running.
func startTied(cmd *exec.Cmd, done <-chan struct{}) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: when this goroutine returns, the runtime ends
		// the thread, which is what signals the server.
		err := cmd.Start()
		errc <- err
		if err != nil {
			return
		}
		<-done
	}()
	return <-errc
}
