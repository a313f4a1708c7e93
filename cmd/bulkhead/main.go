// Command bulkhead keeps Kubernetes fleets alive when a fleet-wide change goes wrong.
// It is also usable as a kubectl plugin (kubectl bulkhead) when installed as kubectl-bulkhead.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/bulkhead-dev/bulkhead/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := cli.NewRootCommand(os.Stdout, os.Stderr)
	// Installed as kubectl-bulkhead, kubectl runs it as `kubectl bulkhead`: say so in help.
	if filepath.Base(os.Args[0]) == "kubectl-bulkhead" {
		cli.AsKubectlPlugin(root)
	}
	err := root.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bulkhead:", err)
		os.Exit(1)
	}
}
