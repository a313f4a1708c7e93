package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/top"
)

func newTopCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	var (
		interval, timeout time.Duration
		once, perReplica  bool
		noDiscovery       bool
		output, sortBy    string
		rows              int
	)
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Show which flows load the kube-apiservers, live, from their /metrics",
		Long: `top scrapes /metrics of every kube-apiserver replica (found in the default/kubernetes
EndpointSlice) every --interval and shows per API Priority and Fairness flow: seat-seconds per second,
requests per second, seats executing, queued requests, rejections and queue wait p99, with the SLO state
per verb and scope and the seats in use against capacity. Keys: s next sort, r summed/per replica, q quit.
With --once it takes two scrapes --interval apart, prints them (-o table|json) and exits non-zero when a
replica could not be read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sortKey, err := top.ParseSortKey(sortBy)
			if err != nil {
				return err
			}
			if output != "table" && output != "json" {
				return fmt.Errorf("unknown output %q: want table or json", output)
			}
			if output == "json" && !once {
				return fmt.Errorf("-o json needs --once")
			}
			if interval <= 0 {
				return fmt.Errorf("--interval must be positive, got %s", interval)
			}
			cfg, err := kube.ToRESTConfig()
			if err != nil {
				return fmt.Errorf("kubeconfig: %w", err)
			}
			scraper, err := controlplane.NewScraper(cfg, controlplane.Options{Timeout: timeout, NoDiscovery: noDiscovery})
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			scraper.WaitForDiscovery(ctx, timeout) // until it syncs, the kubeconfig's server is scraped
			view := top.View{Sort: sortKey, PerReplica: perReplica, MaxFlows: rows}

			if !once {
				var keys *os.File
				if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
					state, err := term.MakeRaw(fd)
					if err != nil {
						return fmt.Errorf("terminal raw mode: %w", err)
					}
					defer term.Restore(fd, state)
					keys = os.Stdin
				}
				return top.Live(ctx, scraper, keys, cmd.OutOrStdout(), interval, view)
			}

			reading, err := top.Once(ctx, scraper, interval)
			if err != nil {
				return err
			}
			if output == "json" {
				err = top.WriteJSON(cmd.OutOrStdout(), reading)
			} else {
				err = top.Render(cmd.OutOrStdout(), reading, view)
			}
			if err != nil {
				return err
			}
			var failed []string
			for _, r := range reading.Replicas {
				if r.State == controlplane.ReplicaUnreachable {
					failed = append(failed, r.Error)
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("%d replica(s) could not be read: %s", len(failed), strings.Join(failed, "; "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&interval, "interval", 2*time.Second, "time between scrapes (the window rates are computed over)")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "bound on each replica's scrape")
	f.BoolVar(&once, "once", false, "take two scrapes --interval apart, print, exit (non-zero if a replica could not be read)")
	f.StringVarP(&output, "output", "o", "table", "with --once: table or json")
	f.StringVar(&sortBy, "sort", string(top.BySeatSeconds), "sort flows by seats, rps, rejected, wait, queued or name")
	f.BoolVar(&perReplica, "per-replica", false, "show each replica's flows instead of their sum")
	f.BoolVar(&noDiscovery, "no-discovery", false, "scrape only the kubeconfig's server, not the replicas in default/kubernetes")
	f.IntVar(&rows, "rows", 0, "show at most this many flows (0: all)")
	return cmd
}
