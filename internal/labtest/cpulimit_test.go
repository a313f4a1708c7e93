package labtest

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/controlplane"
)

// --apiserver-cpus puts kube-apiserver under a CFS quota, as a pod's CPU limit does, and the
// API server's GOMAXPROCS follows it by Go's rule (≥ 1.25): the limit rounded up, at least 2, at
// most the machine's CPUs. On a 2-core machine that is 2 for any limit, which is why bulkhead
// takes --apiserver-cpus when a fractional limit matters.
func TestAPIServerCPULimitIsAQuotaThatGOMAXPROCSFollows(t *testing.T) {
	l, err := StartIn(t.TempDir(), Options{Nodes: 4, PodsPerNode: 1, Services: 1, ExtraArgs: []string{"--apiserver-cpus", "1.5"}})
	if err != nil {
		t.Fatalf("start a lab with --apiserver-cpus 1.5: %v", err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := l.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pid := st.ComponentPIDs["kube-apiserver"]
	quota := cgroupValue(t, pid, "cpu", "cpu.cfs_quota_us", "cpu.max")
	if quota != "150000" && !strings.HasPrefix(quota, "150000 ") {
		t.Fatalf("kube-apiserver's CPU quota is %q, want 150000 µs per 100000 µs period", quota)
	}
	scraper, err := controlplane.NewScraper(l.Config, controlplane.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := controlplane.Analyze(scraper.Scrape(ctx), scraper.Scrape(ctx))
	want := math.Min(float64(runtime.NumCPU()), math.Max(2, math.Ceil(1.5)))
	if got := r.Resources.CPUCapacityCores; got != want {
		t.Fatalf("go_sched_gomaxprocs_threads = %v, want %v (Go's rule for a 1.5-core limit on %d CPUs)", got, want, runtime.NumCPU())
	}
}

// cgroupValue reads a file of pid's cgroup for controller: v1 names it v1File, v2 v2File.
func cgroupValue(t *testing.T, pid int, controller, v1File, v2File string) string {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				v, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", parts[1], parts[2], v1File))
				if err != nil {
					t.Fatal(err)
				}
				return strings.TrimSpace(string(v))
			}
		}
		if parts[0] == "0" && parts[1] == "" {
			if v, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", parts[2], v2File)); err == nil {
				return strings.TrimSpace(string(v))
			}
		}
	}
	t.Fatalf("process %d is in no %s cgroup", pid, controller)
	return ""
}
