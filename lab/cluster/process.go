package cluster

import (
	"fmt"
	"log"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// component is a control-plane binary run as a child process of the lab's own executable
// (`bulkhead-lab kube-apiserver ...`). The supervisor restarts it if it dies unexpectedly and
// leaves it down when stopped on purpose.
type component struct {
	name    string
	args    []string
	logPath string
	// binary, when set, is a program of its own (Prometheus) run with args; otherwise the lab
	// runs its own executable with name as the first argument.
	binary string

	// spawn, when set, starts the process through it (a replica is born inside the lab's
	// namespaces); onStart runs right after each launch (an apiserver joins its limit cgroup and
	// is probed for readiness); onExit runs when the process has exited, for whatever reason.
	spawn   func(start func() error) error
	onStart func(pid int) error
	onExit  func()

	mu         sync.Mutex
	cmd        *exec.Cmd
	exited     chan struct{}
	launchedAt time.Time
	wanted     bool
	closing    bool
	restarts   int
	// crashLoop counts deaths in a row, each within crashLoopReset of its launch.
	crashLoop int
}

// The kubelet's container restart back-off: 10 s after the first crash, doubling to at most
// 5 minutes, forgotten once the container has run for 10 minutes. A crash-looping apiserver is
// down most of the time, as the seed's were.
const (
	crashBackoffInitial = 10 * time.Second
	crashBackoffMax     = 5 * time.Minute
	crashLoopReset      = 10 * time.Minute
)

// restartDelay is how long to wait before the crashLoop-th restart in a row (1 for the first).
func restartDelay(crashLoop int) time.Duration {
	delay := crashBackoffInitial
	for i := 1; i < crashLoop && delay < crashBackoffMax; i++ {
		delay *= 2
	}
	return min(delay, crashBackoffMax)
}

func newComponent(name, logPath string, args []string) *component {
	return &component{name: name, args: args, logPath: logPath}
}

// start launches the child and keeps it running until stop.
func (c *component) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return nil
	}
	c.wanted = true
	return c.launchLocked()
}

func (c *component) launchLocked() error {
	path, args := c.binary, c.args
	if path == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("%s: find own executable: %w", c.name, err)
		}
		path, args = self, append([]string{c.name}, c.args...)
	}
	logFile, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: log file: %w", c.name, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Own process group: a terminal's Ctrl-C reaches only the supervisor, which stops children
	// in order. Pdeathsig: children never outlive a supervisor that was killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := cmd.Start
	if c.spawn != nil {
		start = func() error { return c.spawn(cmd.Start) }
	}
	if err := start(); err != nil {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		logFile.Close()
		return fmt.Errorf("%s: start: %w", c.name, err)
	}
	if c.onStart != nil {
		if err := c.onStart(cmd.Process.Pid); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			logFile.Close()
			return fmt.Errorf("%s: %w", c.name, err)
		}
	}
	exited := make(chan struct{})
	c.cmd, c.exited, c.launchedAt = cmd, exited, time.Now()
	go func() {
		err := cmd.Wait()
		logFile.Close()
		close(exited)
		if c.onExit != nil {
			c.onExit()
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.cmd != cmd {
			return
		}
		c.cmd = nil
		if c.wanted && !c.closing {
			// Like a kubelet with a crashed static pod: restart it with back-off, and count.
			c.restarts++
			if time.Since(c.launchedAt) >= crashLoopReset {
				c.crashLoop = 0
			}
			c.crashLoop++
			delay := restartDelay(c.crashLoop)
			log.Printf("%s exited unexpectedly (%v); restarting in %s, see %s", c.name, err, delay, c.logPath)
			time.AfterFunc(delay, func() {
				c.mu.Lock()
				defer c.mu.Unlock()
				if c.wanted && !c.closing && c.cmd == nil {
					if err := c.launchLocked(); err != nil {
						log.Printf("restart %s: %v", c.name, err)
					}
				}
			})
		}
	}()
	return nil
}

// stop terminates the child (SIGTERM, then SIGKILL after grace) and leaves it down.
func (c *component) stop(grace time.Duration) {
	c.mu.Lock()
	c.wanted = false
	cmd, exited := c.cmd, c.exited
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
}

// close stops the child for good: it is never restarted afterwards.
func (c *component) close(grace time.Duration) {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.stop(grace)
}

// isWanted says whether the child should be running: started and not stopped since.
func (c *component) isWanted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wanted
}

// restartCount is how often the child died unexpectedly and was restarted.
func (c *component) restartCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.restarts
}

// pid is the child's process id, or 0 when it is not running.
func (c *component) pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// componentGrace is how long a component may take to exit after SIGTERM. kube-apiserver stops
// listening at once but can linger for tens of seconds on shutdown hooks; the lab's state lives
// in etcd, so nothing is lost by killing it after a short grace.
const componentGrace = 5 * time.Second
