package dns_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/labtest"
)

// While the API server refuses connections, the node says so at once, with the cause, and only
// once: client-go retries for as long as the outage lasts.
func TestAnAPIServerThatRefusesConnectionsIsLoggedOnceWithTheCause(t *testing.T) {
	var logs labtest.SyncBuffer
	cfg := config(t, t.TempDir()+"/dns.snapshot")
	cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
	start(t, cfg)

	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "connection refused") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(5 * time.Second) // several retries of both informers
	var outage []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "API server") {
			outage = append(outage, line)
		}
	}
	if len(outage) != 1 || !strings.Contains(outage[0], "level=WARN") || !strings.Contains(outage[0], "connect: connection refused") {
		t.Fatalf("want one warning naming the refused connection, got %d lines:\n%s", len(outage), logs.String())
	}
}
