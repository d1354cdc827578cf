package loadgen

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
)

// Worker is the parent's end of one worker: its command input, its event
// output, and a way to wait for its end.
type Worker struct {
	In  io.WriteCloser
	Out io.Reader
	// Wait waits for the worker to end, after In is closed.
	Wait func() error
	// SharesProcess is true for a worker running inside the parent: its
	// resource usage is the parent's, not to be added again.
	SharesProcess bool
}

// Spawner starts worker number i.
type Spawner func(i int) (*Worker, error)

// ExecSpawner starts workers as child processes: exe with args (for
// shardbench, itself with the hidden "worker" command). Their stderr is
// the parent's. Each child runs in a process group of its own, so a ^C on
// the terminal reaches only the parent, which then stops the workers in
// order; and the kernel kills a child whose parent dies.
func ExecSpawner(exe string, args ...string) Spawner {
	return func(i int) (*Worker, error) {
		cmd := exec.Command(exe, args...)
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("loadgen: start worker %d: %w", i, err)
		}
		return &Worker{In: in, Out: out, Wait: cmd.Wait}, nil
	}
}

// InProcessSpawner runs workers as goroutines of this process, over pipes,
// with the same protocol as child processes. Tests use it; so can runs
// small enough for one process's open-file limit.
func InProcessSpawner() Spawner {
	return func(i int) (*Worker, error) {
		cmdR, cmdW := io.Pipe()
		evR, evW := io.Pipe()
		done := make(chan error, 1)
		go func() {
			err := RunWorker(cmdR, evW)
			evW.CloseWithError(io.EOF)
			cmdR.Close()
			done <- err
		}()
		return &Worker{In: cmdW, Out: evR, Wait: func() error { return <-done }, SharesProcess: true}, nil
	}
}
