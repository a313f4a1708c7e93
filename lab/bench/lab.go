package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/bulkhead-dev/bulkhead/lab/cluster"
)

// runningLab is a `bulkhead-lab up` child process started by a benchmark.
type runningLab struct {
	dir     string
	cmd     *exec.Cmd
	exited  chan struct{}
	config  *rest.Config
	client  kubernetes.Interface
	startup time.Duration
}

// startLab runs this executable's `up` in dir and waits for its ready line.
func startLab(ctx context.Context, dir string, args []string, log io.Writer) (*runningLab, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	cmd := exec.Command(self, append([]string{"up", "--dir", dir}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = log
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start lab: %w", err)
	}
	l := &runningLab{dir: dir, cmd: cmd, exited: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			if strings.HasPrefix(scanner.Text(), cluster.ReadyPrefix) {
				close(ready)
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(l.exited) }()
	select {
	case <-ready:
	case <-l.exited:
		return nil, fmt.Errorf("lab exited before it was ready (%s); see the logs in %s", cmd.ProcessState, dir)
	case <-ctx.Done():
		l.stop()
		return nil, ctx.Err()
	}
	l.startup = time.Since(start)
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "kubeconfig"))
	if err != nil {
		l.stop()
		return nil, fmt.Errorf("lab kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	l.config = cfg
	if l.client, err = kubernetes.NewForConfig(cfg); err != nil {
		l.stop()
		return nil, err
	}
	return l, nil
}

func (l *runningLab) stop() {
	_ = l.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-l.exited:
	case <-time.After(time.Minute):
		_ = syscall.Kill(-l.cmd.Process.Pid, syscall.SIGKILL)
		<-l.exited
	}
}

// status asks the lab's control socket for its processes.
func (l *runningLab) status(ctx context.Context) (cluster.Status, error) {
	var st cluster.Status
	body, err := cluster.Call(ctx, l.dir, "GET", "/status")
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(body, &st)
}

// processCPU returns a process's user+system CPU time.
func processCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU of process %d: %w", pid, err)
	}
	// Fields after the command name, which is in parentheses and may contain spaces.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("process %d: short /proc stat", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("process %d: unreadable CPU times", pid)
	}
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// processRSS returns a process's resident memory in bytes.
func processRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	fields := strings.Fields(string(data))
	if len(fields) < 2 {
		return 0, fmt.Errorf("process %d: short /proc statm", pid)
	}
	pages, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("process %d: unreadable statm", pid)
	}
	return pages * int64(os.Getpagesize()), nil
}
