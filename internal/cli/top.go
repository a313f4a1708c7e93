package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

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
		prometheus        string
		promSelector      string
		window            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Show which flows load the kube-apiservers, live, from their /metrics",
		Long: `top scrapes /metrics of every kube-apiserver replica (found in the default/kubernetes
EndpointSlice) every --interval and shows per API Priority and Fairness flow: seat-seconds per second,
requests per second, seats executing, queued requests, rejections and queue wait p99, with the SLO state
per verb and scope and the seats in use against capacity. Keys: s next sort, r summed/per replica, q quit.
With --once it takes two scrapes --interval apart, prints them (-o table|json) and exits non-zero when a
replica could not be read. With --prometheus it reads the same series from a Prometheus instead, each
reading covering the --window that ends now. Piped rather than shown on a terminal, the live view
prints plain frames one after another, without screen control.

Manual: ` + ManualURL + `#top`,
		Example: `  bulkhead top
  bulkhead top --once -o json | jq '.flows[0]'
  bulkhead top --prometheus http://prometheus.monitoring:9090 --window 5m`,
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
			if interval <= 0 || window <= 0 {
				return fmt.Errorf("--interval and --window must be positive, got %s and %s", interval, window)
			}
			if rows < 0 {
				return fmt.Errorf("--rows %d must not be negative (0 shows every flow)", rows)
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			var read top.ReadFunc
			if prometheus != "" {
				src, err := controlplane.NewPrometheusSource(prometheus, promSelector, &http.Client{Timeout: timeout})
				if err != nil {
					return err
				}
				read = top.Windowed(src, window)
			} else {
				cfg, err := clusterConfig(kube)
				if err != nil {
					return err
				}
				scraper, err := controlplane.NewScraper(cfg, controlplane.Options{Timeout: timeout, NoDiscovery: noDiscovery})
				if err != nil {
					return err
				}
				if !scraper.WaitForDiscovery(ctx, timeout) {
					fmt.Fprintf(cmd.ErrOrStderr(), "bulkhead: API server replicas not discovered within %s (%s): scraping %s only\n",
						timeout, discoveryCause(ctx, cfg, scraper, timeout), cfg.Host)
				}
				read = top.Consecutive(scraper, interval)
			}
			view := top.View{Sort: sortKey, PerReplica: perReplica, MaxFlows: rows}

			if !once {
				out := cmd.OutOrStdout()
				if !isTerminal(out) {
					out = &plainWriter{w: out}
				}
				var keys io.Reader
				if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) && isTerminal(cmd.OutOrStdout()) {
					state, err := term.MakeRaw(fd)
					if err != nil {
						return fmt.Errorf("terminal raw mode: %w", err)
					}
					defer term.Restore(fd, state)
					keys = os.Stdin
				}
				return top.Live(ctx, read, keys, out, interval, view)
			}

			reading, err := read(ctx)
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
				return fmt.Errorf("the reading %s: %d could not be read: %s", reading.Coverage, len(failed), strings.Join(failed, "; "))
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
	f.StringVar(&prometheus, "prometheus", "", "read the apiservers' series from this Prometheus (http://host:9090) instead of scraping them")
	f.StringVar(&promSelector, "prometheus-selector", `job="apiserver"`, "with --prometheus: label matchers selecting the kube-apiserver series")
	f.DurationVar(&window, "window", time.Minute, "with --prometheus: the span each reading covers (at least two Prometheus scrape intervals)")
	return cmd
}

// discoveryCause names why the replicas were not discovered. The EndpointSlice watch retries
// refused connections quietly (client-go's watch-list), so when it has reported nothing, one
// bounded request of our own names the cause.
func discoveryCause(ctx context.Context, cfg *rest.Config, scraper *controlplane.Scraper, timeout time.Duration) string {
	if err := scraper.DiscoveryError(); err != nil {
		return err.Error()
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err.Error()
	}
	probeCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err = client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).List(probeCtx,
		metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=kubernetes", Limit: 1})
	if err != nil {
		return "listing EndpointSlices in default: " + err.Error()
	}
	return "the EndpointSlice watch has not synced yet"
}
