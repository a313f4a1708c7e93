package labtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// BalancedConnection is one client connection through the lab's load balancer (labs with
// several apiservers) and the replica it reached.
type BalancedConnection struct {
	// Client is the client end, 127.0.0.1:port.
	Client  string `json:"client"`
	Replica int    `json:"replica"`
}

// Connections lists the load balancer's open connections (`bulkhead-lab ctl balancer`).
func (l *Lab) Connections(ctx context.Context) ([]BalancedConnection, error) {
	out, err := exec.CommandContext(ctx, l.binary, "ctl", "--dir", l.Dir, "balancer").Output()
	if err != nil {
		return nil, fmt.Errorf("bulkhead-lab ctl balancer: %w", exitDetail(err))
	}
	var b struct {
		Connections []BalancedConnection `json:"connections"`
	}
	if err := json.Unmarshal(out, &b); err != nil {
		return nil, fmt.Errorf("bulkhead-lab ctl balancer: %w", err)
	}
	return b.Connections, nil
}

// ConnectionsOf lists the load balancer's connections whose client is process pid.
func (l *Lab) ConnectionsOf(ctx context.Context, pid int) ([]BalancedConnection, error) {
	ports, err := clientPorts(pid)
	if err != nil {
		return nil, err
	}
	conns, err := l.Connections(ctx)
	if err != nil {
		return nil, err
	}
	var out []BalancedConnection
	for _, c := range conns {
		_, port, err := net.SplitHostPort(c.Client)
		if err == nil && ports[port] {
			out = append(out, c)
		}
	}
	return out, nil
}

// ReplicasUsedBy lists, sorted and without repeats, the replicas that process pid's
// connections through the load balancer reach: which replica a client's watch or requests go
// to, so that a test can stop exactly that one.
func (l *Lab) ReplicasUsedBy(ctx context.Context, pid int) ([]int, error) {
	conns, err := l.ConnectionsOf(ctx, pid)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, c := range conns {
		out = append(out, c.Replica)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// clientPorts returns the local ports of process pid's IPv4 TCP sockets, as decimal strings:
// its socket inodes (from /proc/pid/fd) matched in /proc/pid/net/tcp.
func clientPorts(pid int) (map[string]bool, error) {
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, fmt.Errorf("sockets of process %d: %w", pid, err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err == nil && strings.HasPrefix(target, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return nil, fmt.Errorf("TCP sockets of process %d: %w", pid, err)
	}
	defer f.Close()
	ports := map[string]bool{}
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		fields := strings.Fields(scanner.Text())
		if len(fields) < 10 || !inodes[fields[9]] {
			continue
		}
		_, hexPort, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		if port, err := strconv.ParseUint(hexPort, 16, 16); err == nil {
			ports[strconv.FormatUint(port, 10)] = true
		}
	}
	return ports, scanner.Err()
}

// exitDetail adds a failed command's stderr to its error.
func exitDetail(err error) error {
	if exit, ok := err.(*exec.ExitError); ok && len(exit.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(exit.Stderr)))
	}
	return err
}
