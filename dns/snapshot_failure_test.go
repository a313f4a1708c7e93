package dns

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/bulkhead-dev/bulkhead/dns/snapshot"
)

// A snapshot write that fails after start-up leaves the node serving (ready), and says so in
// /readyz and in bulkhead_dns_snapshot_write_failing until a write succeeds again.
func TestALaterSnapshotWriteFailureShowsInReadyzAndAMetric(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", Snapshot: filepath.Join(dir, "dns.snapshot"), ClusterDomain: "cluster.local",
		TTL: 5 * time.Second, Metrics: "127.0.0.1:0", SnapshotDelay: 10 * time.Millisecond, Kube: &rest.Config{Host: "http://" + dead, Timeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + n.MetricsAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); {
			if time.Now().After(deadline) {
				t.Fatalf("%s never happened", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// The directory disappears under the running node (a remounted disk, an operator's rm).
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	n.view(&snapshot.State{SyncedAt: time.Now()}) // what the watch hands over after a sync
	waitFor("a failed write in /readyz", func() bool {
		_, body := get("/readyz")
		return strings.Contains(body, "warning: snapshot") && strings.Contains(body, "last write failed")
	})
	if status, body := get("/readyz"); status != http.StatusOK || !strings.HasPrefix(body, "ok\n") {
		t.Fatalf("/readyz = %d %q; a node that serves is ready", status, body)
	}
	if _, m := get("/metrics"); !strings.Contains(m, "bulkhead_dns_snapshot_write_failing 1") {
		t.Fatal("bulkhead_dns_snapshot_write_failing is not 1 after a failed write")
	}

	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n.view(&snapshot.State{SyncedAt: time.Now()})
	waitFor("the warning to clear", func() bool {
		_, body := get("/readyz")
		return body == "ok\n"
	})
	if _, m := get("/metrics"); !strings.Contains(m, "bulkhead_dns_snapshot_write_failing 0") {
		t.Fatal("bulkhead_dns_snapshot_write_failing stays 1 after a write succeeded")
	}
}
