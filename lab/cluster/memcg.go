package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// memoryCgroup confines a process's memory the way a container's limit does: past the limit the
// kernel's OOM killer ends it. The lab uses it to let kube-apiserver fall over from memory, as
// the seed's apiservers did, instead of growing without bound on a large machine.
type memoryCgroup struct {
	dir string
}

// newMemoryCgroup creates a child of this process's memory cgroup (v1 or v2) with a limit.
func newMemoryCgroup(name string, limitBytes int64) (*memoryCgroup, error) {
	parent, limitFile, err := ownMemoryCgroup()
	if err != nil {
		return nil, fmt.Errorf("--apiserver-memory-limit needs a writable memory cgroup: %w", err)
	}
	dir := filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("--apiserver-memory-limit: create cgroup %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, limitFile), []byte(strconv.FormatInt(limitBytes, 10)), 0o644); err != nil {
		_ = os.Remove(dir)
		return nil, fmt.Errorf("--apiserver-memory-limit: set %s: %w", limitFile, err)
	}
	return &memoryCgroup{dir: dir}, nil
}

// add moves a process into the cgroup.
func (c *memoryCgroup) add(pid int) error {
	if err := os.WriteFile(filepath.Join(c.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("move process %d into %s: %w", pid, c.dir, err)
	}
	return nil
}

// remove deletes the cgroup; it must be empty, so call it after the process has exited.
func (c *memoryCgroup) remove() error {
	return os.Remove(c.dir)
}

// ownMemoryCgroup finds this process's memory cgroup directory and the name of its limit file.
func ownMemoryCgroup() (dir, limitFile string, err error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	var unified string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		parts := strings.SplitN(scanner.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, controller := range strings.Split(parts[1], ",") {
			if controller == "memory" {
				return filepath.Join("/sys/fs/cgroup/memory", parts[2]), "memory.limit_in_bytes", nil
			}
		}
		if parts[0] == "0" && parts[1] == "" {
			unified = parts[2]
		}
	}
	if unified != "" {
		dir := filepath.Join("/sys/fs/cgroup", unified)
		if _, err := os.Stat(filepath.Join(dir, "memory.max")); err == nil {
			return dir, "memory.max", nil
		}
	}
	return "", "", errors.New("no memory controller in /proc/self/cgroup")
}
