package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"text/tabwriter"
	"time"
)

// StartupOptions shape the start-up benchmark.
type StartupOptions struct {
	Dir         string
	Nodes       int
	PodsPerNode int
	Services    int
	APIServers  int
	// Settle is how long the ready lab runs before its memory is read.
	Settle time.Duration
}

// Startup starts one lab, and prints how long it took to be ready and the resident memory of
// each of its processes once it has settled.
func Startup(ctx context.Context, opts StartupOptions, out, log io.Writer) error {
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return fmt.Errorf("bench dir: %w", err)
	}
	labLog, err := os.Create(opts.Dir + "/bench-lab.log")
	if err != nil {
		return fmt.Errorf("bench log: %w", err)
	}
	defer labLog.Close()
	fmt.Fprintf(log, "bench: starting a lab of %d nodes × %d pods with %d apiserver(s) in %s\n", opts.Nodes, opts.PodsPerNode, opts.APIServers, opts.Dir)
	l, err := startLab(ctx, opts.Dir, []string{
		"--nodes", fmt.Sprint(opts.Nodes), "--pods-per-node", fmt.Sprint(opts.PodsPerNode),
		"--services", fmt.Sprint(opts.Services), "--apiservers", fmt.Sprint(opts.APIServers),
	}, labLog)
	if err != nil {
		return err
	}
	defer l.stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(opts.Settle):
	}
	st, err := l.status(ctx)
	if err != nil {
		return err
	}
	pids := map[string]int{"supervisor (etcd, kubelets, emulator, balancer)": st.SupervisorPID}
	for name, pid := range st.ComponentPIDs {
		pids[name] = pid
	}
	names := make([]string, 0, len(pids))
	for name := range pids {
		names = append(names, name)
	}
	slices.Sort(names)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "lab of %d nodes × %d pods, %d apiserver(s): ready in %.1f s\t\n", opts.Nodes, opts.PodsPerNode, opts.APIServers, l.startup.Seconds())
	fmt.Fprintf(w, "process\tresident MiB after %s\t\n", opts.Settle)
	var total int64
	for _, name := range names {
		rss, err := processRSS(pids[name])
		if err != nil {
			return err
		}
		total += rss
		fmt.Fprintf(w, "%s\t%d\t\n", name, rss>>20)
	}
	fmt.Fprintf(w, "total\t%d\t\n", total>>20)
	return w.Flush()
}
