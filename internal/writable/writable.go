// Package writable checks, before a command starts work whose result it must write later, that
// it will be able to: a rollout must not run for an hour only to fail writing its report, and a
// DNS server must not report ready while every snapshot write fails.
package writable

import (
	"fmt"
	"os"
)

// Dir creates and removes a file in dir, and says why it cannot when it cannot.
func Dir(dir string) error {
	f, err := os.CreateTemp(dir, ".bulkhead-write-check-*")
	if err != nil {
		return fmt.Errorf("directory %s is not writable: %w", dir, err)
	}
	name := f.Name()
	closeErr := f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("directory %s: remove the write check %s: %w", dir, name, err)
	}
	if closeErr != nil {
		return fmt.Errorf("directory %s is not writable: %w", dir, closeErr)
	}
	return nil
}
