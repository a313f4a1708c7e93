package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A break-glass kubeconfig redirected to a file is made private before the token is written,
// and the command says where it went.
func TestABreakGlassKubeconfigFileIsMadePrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bg.kubeconfig")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	where, err := protectDestination(f)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 || !strings.Contains(where, path) || !strings.Contains(where, "mode 600") {
		t.Fatalf("mode %v, said %q", info.Mode().Perm(), where)
	}
	if where, err := protectDestination(&bytes.Buffer{}); err != nil || !strings.Contains(where, "chmod 600") {
		t.Fatalf("to a pipe: %q %v", where, err)
	}
}
