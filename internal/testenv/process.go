package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// The life cycle shared by the servers testenv runs (PostgreSQL, Redis and
// the gateway): start a child process on ports chosen once, wait until it
// serves, stop it with a signal (escalating to harder ones) and wait for it
// to exit, and start it again on the same ports.

// process is a server child process whose exit is observed by one goroutine.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid after done is closed
}

func startProcess(cmd *exec.Cmd) (*process, error) {
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signalAndWait sends each signal in turn, waiting up to wait after each for
// the process to exit.
func (p *process) signalAndWait(wait time.Duration, sigs ...os.Signal) error {
	for _, sig := range sigs {
		if p.exited() {
			return nil
		}
		if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("signal %v: %w", sig, err)
		}
		select {
		case <-p.done:
			return nil
		case <-time.After(wait):
		}
	}
	<-p.done
	return nil
}

// poll calls ready every interval until it succeeds, and fails when the
// process exits first or after timeout.
func (p *process) poll(timeout, interval time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("server exited: %v", p.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}

// launch starts cmd and calls ready to wait until the process serves. If
// ready fails, launch ends the process with the abort signals (waiting up
// to 5 s after each) and returns failed(err); failed runs once the process
// has exited, so that it can quote the complete log.
func launch(cmd *exec.Cmd, ready func(*process) error, failed func(error) error, abort ...os.Signal) (*process, error) {
	p, err := startProcess(cmd)
	if err != nil {
		return nil, err
	}
	if err := ready(p); err != nil {
		_ = p.signalAndWait(5*time.Second, abort...)
		return nil, failed(err)
	}
	return p, nil
}

// child holds the process of a server that testenv stops and starts again
// (nil while stopped). Its methods are safe for concurrent use; the zero
// value is a stopped server.
type child struct {
	mu   sync.Mutex
	proc *process
}

// start calls launch to start the process unless it is running.
func (c *child) start(launch func() (*process, error)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil && !c.proc.exited() {
		return nil
	}
	p, err := launch()
	if err != nil {
		return err
	}
	c.proc = p
	return nil
}

// stop sends sigs in turn, waiting up to wait after each, and returns once
// the process has exited. Stopping a stopped server is a no-op.
func (c *child) stop(wait time.Duration, sigs ...os.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return nil
	}
	p := c.proc
	c.proc = nil
	return p.signalAndWait(wait, sigs...)
}

// running reports whether the process is alive.
// signal sends sig to the process if it runs.
func (c *child) signal(sig os.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil || c.proc.exited() {
		return errors.New("process not running")
	}
	return c.proc.cmd.Process.Signal(sig)
}

func (c *child) running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proc != nil && !c.proc.exited()
}

// onFreePorts calls start with n free TCP ports on 127.0.0.1, trying again
// with new ports (3 attempts in all), since a port found free may be taken
// before the server binds it. It returns the last error.
func onFreePorts(n int, start func(ports []int) error) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		ports := make([]int, n)
		for i := range ports {
			if ports[i], err = freePort(); err != nil {
				break
			}
		}
		if err == nil {
			err = start(ports)
		}
		if err == nil {
			return nil
		}
	}
	return err
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	return port, nil
}

// startForTest starts a server with start for tb and closes it when tb
// ends. It fails tb if the server cannot be started.
func startForTest[S interface{ Close() error }](tb testing.TB, start func() (S, error)) S {
	tb.Helper()
	s, err := start()
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("testenv: %v", err)
		}
	})
	return s
}

// restart stops a server and starts it again.
func restart(stop, start func() error) error {
	if err := stop(); err != nil {
		return err
	}
	return start()
}
