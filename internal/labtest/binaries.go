package labtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

const coreDNSModule = "github.com/coredns/coredns@v1.15.0"

// CoreDNS returns CoreDNS v1.15.0 for tests that compare with it: $BULKHEAD_COREDNS, or the copy
// in the user cache directory (where `make coredns` puts it), installed there with `go install`
// (about 5 minutes cold) when it is missing.
func CoreDNS(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("BULKHEAD_COREDNS"); p != "" {
		return p
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("CoreDNS: user cache dir: %v", err)
	}
	dir := filepath.Join(cache, "bulkhead", "bin")
	bin := filepath.Join(dir, "coredns")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	t.Logf("installing %s into %s (takes minutes the first time)", coreDNSModule, dir)
	cmd := exec.Command("go", "install", coreDNSModule)
	cmd.Env = append(os.Environ(), "GOBIN="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install %s: %v\n%s", coreDNSModule, err, out)
	}
	return bin
}

// Prometheus returns the Prometheus server for labs that run one (Options.Prometheus):
// $BULKHEAD_PROMETHEUS_BIN, which the Makefile sets after `make prometheus` has installed it. The
// test fails when it is unset or missing: installing takes minutes and is the build's job.
func Prometheus(t testing.TB) string {
	t.Helper()
	p := os.Getenv("BULKHEAD_PROMETHEUS_BIN")
	if p == "" {
		t.Fatal("BULKHEAD_PROMETHEUS_BIN is not set: run make prometheus and set it to the binary (make test does both)")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("BULKHEAD_PROMETHEUS_BIN=%s: %v (run make prometheus)", p, err)
	}
	return p
}

// Bulkhead builds the bulkhead command into a temporary directory and returns its path, for tests
// that run it as a separate process (as an operator would).
func Bulkhead(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bulkhead")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/bulkhead-dev/bulkhead/cmd/bulkhead")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build bulkhead: %v\n%s", err, out)
	}
	return bin
}
