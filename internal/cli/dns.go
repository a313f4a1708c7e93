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
are forwarded to --upstream with an RFC 8767 serve-stale cache. See dns/README.md.`,
		Example: `  bulkhead dns --listen 169.254.20.10:53 --snapshot /var/lib/bulkhead/dns.snapshot --upstream /etc/resolv.conf`,
		Args:    cobra.NoArgs,
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
			restConfig, err := kube.ToRESTConfig()
			if err != nil {
				return fmt.Errorf("kubernetes client configuration: %w", err)
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
