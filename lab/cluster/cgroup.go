package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// limitCgroup confines a process the way a container's limits do: past its memory limit the
// kernel's OOM killer ends it, and its CPU bandwidth quota (cpu.max, or cpu.cfs_quota_us on
// cgroup v1) throttles it to a number of cores. The lab uses it so that kube-apiserver falls
// over from memory as the seed's apiservers did, and so that its CPU capacity is explicit
// rather than whatever the emulator and the other components leave it.
type limitCgroup struct {
	// dirs are the cgroup directories the process joins: one on cgroup v2, one per
	// controller hierarchy on v1.
	dirs []string
}

// cpuPeriodMicros is the CFS period the quota is a share of, the kernel's and the kubelet's
// default.
const cpuPeriodMicros = 100000

// newLimitCgroup creates a child of this process's cgroup(s) named name with a memory limit
// (0: none) and a CPU limit in cores (0: none).
func newLimitCgroup(name string, memoryBytes int64, cpus float64) (*limitCgroup, error) {
	c := &limitCgroup{}
	fail := func(err error) (*limitCgroup, error) {
		_ = c.remove()
		return nil, err
	}
	quota := int64(cpus * cpuPeriodMicros)
	for _, want := range []struct {
		flag, controller, v1File, v2File, value string
		set                                     bool
	}{
		{"--apiserver-memory-limit", "memory", "memory.limit_in_bytes", "memory.max", strconv.FormatInt(memoryBytes, 10), memoryBytes > 0},
		{"--apiserver-cpus", "cpu", "cpu.cfs_quota_us", "cpu.max", strconv.FormatInt(quota, 10), cpus > 0},
	} {
		if !want.set {
			continue
		}
		parent, v1, err := ownCgroup(want.controller, want.v2File)
		if err != nil {
			return fail(fmt.Errorf("%s needs a writable %s cgroup: %w", want.flag, want.controller, err))
		}
		removeStaleCgroups(parent)
		dir := filepath.Join(parent, name)
		if !slices.Contains(c.dirs, dir) {
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return fail(fmt.Errorf("%s: create cgroup %s: %w", want.flag, dir, err))
			}
			c.dirs = append(c.dirs, dir)
		}
		file, value := want.v2File, want.value
		if v1 {
			file = want.v1File
			if want.controller == "cpu" {
				if err := os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), []byte(strconv.Itoa(cpuPeriodMicros)), 0o644); err != nil {
					return fail(fmt.Errorf("%s: set cpu.cfs_period_us: %w", want.flag, err))
				}
			}
		} else if want.controller == "cpu" {
			value = fmt.Sprintf("%d %d", quota, cpuPeriodMicros)
		}
		if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0o644); err != nil {
			return fail(fmt.Errorf("%s: set %s: %w", want.flag, file, err))
		}
	}
	return c, nil
}

// add moves a process into the cgroup(s).
func (c *limitCgroup) add(pid int) error {
	for _, dir := range c.dirs {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("move process %d into %s: %w", pid, dir, err)
		}
	}
	return nil
}

// remove deletes the cgroup(s); they must be empty, so call it after the process has exited.
func (c *limitCgroup) remove() error {
	var errs []error
	for _, dir := range c.dirs {
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeStaleCgroups deletes the cgroups that labs killed with SIGKILL left in parent (they had
// no chance to remove them): directories named bulkhead-lab-<pid>-… whose process is gone. A
// cgroup with a process in it cannot be removed, so a running lab's is never touched.
func removeStaleCgroups(parent string) {
	dirs, err := filepath.Glob(filepath.Join(parent, "bulkhead-lab-*-*"))
	if err != nil {
		return
	}
	for _, dir := range dirs {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(dir), "bulkhead-lab-"), "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		_ = os.Remove(dir)
	}
}

// ownCgroup finds this process's cgroup directory for a controller: its v1 hierarchy when the
// controller has one (v1 is true), else the unified (v2) cgroup when it offers v2File.
func ownCgroup(controller, v2File string) (dir string, v1 bool, err error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	var unified string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		parts := strings.SplitN(scanner.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, name := range strings.Split(parts[1], ",") {
			if name == controller {
				return filepath.Join("/sys/fs/cgroup", parts[1], parts[2]), true, nil
			}
		}
		if parts[0] == "0" && parts[1] == "" {
			unified = parts[2]
		}
	}
	if unified != "" {
		dir := filepath.Join("/sys/fs/cgroup", unified)
		if _, err := os.Stat(filepath.Join(dir, v2File)); err == nil {
			return dir, false, nil
		}
	}
	return "", false, fmt.Errorf("no %s controller in /proc/self/cgroup", controller)
}
