package writable

import (
	"os"
	"strings"
	"testing"
)

func TestDirAcceptsAWritableDirectoryAndLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	if err := Dir(dir); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("the check left %d files behind", len(entries))
	}
}

func TestDirNamesTheDirectoryItCannotWrite(t *testing.T) {
	// /proc refuses new files whoever asks, root included.
	for _, dir := range []string{"/proc", "/nonexistent/dir"} {
		if err := Dir(dir); err == nil || !strings.Contains(err.Error(), dir+" is not writable") {
			t.Errorf("%s: error = %v", dir, err)
		}
	}
}
