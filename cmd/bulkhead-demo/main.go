// Command bulkhead-demo replays the December 2024 incident in the lab, unguarded and guarded,
// and writes a side-by-side table and an HTML report. `make demo` builds what it needs and runs it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/demo"
)

func main() {
	opts := demo.DefaultOptions()
	flag.StringVar(&opts.Dir, "dir", opts.Dir, "directory for the labs, logs and the report")
	flag.StringVar(&opts.BulkheadBinary, "bulkhead", "bin/bulkhead", "the bulkhead binary")
	flag.StringVar(&opts.CoreDNSBinary, "coredns", "", "the CoreDNS v1.15.0 binary (make coredns installs it)")
	flag.IntVar(&opts.Nodes, "nodes", opts.Nodes, "fake nodes")
	flag.IntVar(&opts.PodsPerNode, "pods-per-node", opts.PodsPerNode, "filler pods per node")
	flag.IntVar(&opts.Services, "services", opts.Services, "filler Services (the names DNS is asked for)")
	flag.DurationVar(&opts.AgentEvery, "agent-every", opts.AgentEvery, "each telemetry agent LISTs every pod this often")
	flag.DurationVar(&opts.Duration, "duration", opts.Duration, "how long each run is observed after the DaemonSet is applied")
	flag.DurationVar(&opts.RestartDNSAt, "restart-dns-at", opts.RestartDNSAt, "when both DNS servers are restarted, into each run")
	flag.StringVar(&opts.Waves, "waves", opts.Waves, "waves of the guarded rollout")
	flag.StringVar(&opts.Soak, "soak", opts.Soak, "soak per wave of the guarded rollout")
	flag.DurationVar(&opts.Interval, "interval", opts.Interval, "sampling interval")
	flag.StringVar(&opts.APIServerMemoryLimit, "apiserver-memory-limit", opts.APIServerMemoryLimit, "kube-apiserver's memory limit in the lab, as a pod's (the seed's apiservers died at theirs); empty for none")
	flag.Parse()
	if err := check(opts); err != nil {
		fmt.Fprintln(os.Stderr, "bulkhead-demo:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, "bulkhead-demo:", err)
		os.Exit(1)
	}
}

func check(o demo.Options) error {
	for flagName, path := range map[string]string{"--bulkhead": o.BulkheadBinary, "--coredns": o.CoreDNSBinary} {
		if path == "" {
			return fmt.Errorf("%s is required", flagName)
		}
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%s: %w", flagName, err)
		}
	}
	if o.Nodes <= 0 || o.Services <= 0 || o.PodsPerNode <= 0 {
		return fmt.Errorf("--nodes, --services and --pods-per-node must be positive")
	}
	if o.Interval <= 0 || o.AgentEvery <= 0 || o.RestartDNSAt <= 0 || o.Duration <= o.RestartDNSAt {
		return fmt.Errorf("--interval, --agent-every and --restart-dns-at must be positive and --duration longer than --restart-dns-at")
	}
	return nil
}

func run(ctx context.Context, opts demo.Options) error {
	start := time.Now()
	runs, err := demo.Replay(ctx, opts, os.Stderr)
	if err != nil {
		return err
	}
	fmt.Println()
	if err := demo.WriteTable(os.Stdout, runs); err != nil {
		return err
	}
	data, err := json.MarshalIndent(runs, "", "  ")
	if err != nil {
		return fmt.Errorf("report JSON: %w", err)
	}
	if err := os.WriteFile(filepath.Join(opts.Dir, "report.json"), data, 0o644); err != nil {
		return fmt.Errorf("write report JSON: %w", err)
	}
	htmlPath := filepath.Join(opts.Dir, "report.html")
	f, err := os.Create(htmlPath)
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	defer f.Close()
	if err := demo.WriteHTML(f, runs); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	abs, _ := filepath.Abs(htmlPath)
	fmt.Printf("\nreport: %s (demo took %s)\n", abs, time.Since(start).Round(time.Second))
	return nil
}
