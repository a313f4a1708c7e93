package cli

import (
	"fmt"
	"log/slog"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/bulkhead-dev/bulkhead/dns"
	"github.com/bulkhead-dev/bulkhead/dns/upstream"
)

func newDNSCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	cfg := dns.Config{}
	procs := 0
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "Node-local DNS for cluster names that survives API server outages and its own restarts",
		Long: `Answer cluster names (Services, EndpointSlices) from a watch on the API server, persisted
to a crash-safe snapshot that is served at start-up before the API server answers. Other names
are forwarded to --upstream with an RFC 8767 serve-stale cache. The snapshot's directory must be
writable at start-up; a later failed write shows in /readyz and bulkhead_dns_snapshot_write_failing.
Changes of the connection to the API server are logged once each, with their cause.

Manual: ` + ManualURL + `#dns`,
		Example: `  bulkhead dns --listen 169.254.20.10:53 --snapshot /var/lib/bulkhead/dns.snapshot --upstream /etc/resolv.conf
  bulkhead dns --listen 127.0.0.1:5353 --snapshot /tmp/dns.snapshot --metrics 127.0.0.1:9253`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(); err != nil {
				return err
			}
			if procs < 0 {
				return fmt.Errorf("--gomaxprocs %d must not be negative", procs)
			}
			if procs > 0 {
				runtime.GOMAXPROCS(procs)
			}
			restConfig, err := clusterConfig(kube)
			if err != nil {
				return err
			}
			restConfig.UserAgent = "bulkhead-dns/" + buildVersion()
			cfg.Kube = restConfig
			cfg.Log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			node, err := dns.Start(ctx, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "bulkhead dns: serving %s on %s (metrics %s, ready %v)\n",
				cfg.ClusterDomain, node.DNSAddr(), node.MetricsAddr(), node.Ready())
			return node.Wait()
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", dns.DefaultListen, "IP:port to answer DNS on, UDP and TCP")
	f.StringVar(&cfg.Snapshot, "snapshot", "", "snapshot file keeping cluster records across restarts (required)")
	f.StringVar(&cfg.ClusterDomain, "cluster-domain", dns.DefaultClusterDomain, "cluster domain answered from Services and EndpointSlices")
	f.StringVar(&cfg.Upstream, "upstream", "", "resolv.conf path or comma-separated resolver IP[:port] for other names; empty refuses them")
	f.DurationVar(&cfg.TTL, "ttl", dns.DefaultTTL, "TTL of cluster records (whole seconds)")
	f.DurationVar(&cfg.MaxStale, "max-stale", upstream.DefaultMaxStale, "how long past expiry upstream answers may be served stale (RFC 8767)")
	f.StringVar(&cfg.Metrics, "metrics", dns.DefaultMetrics, "IP:port for /metrics, /healthz and /readyz; empty disables")
	f.DurationVar(&cfg.SnapshotDelay, "snapshot-delay", dns.DefaultSnapshotDelay, "coalesce snapshot writes over this long")
	f.IntVar(&procs, "gomaxprocs", 1, "Go scheduler threads (GOMAXPROCS); 1 spends the least CPU per query, 0 keeps Go's default")
	return cmd
}
