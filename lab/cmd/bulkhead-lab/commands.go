package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"

	labbench "github.com/bulkhead-dev/bulkhead/lab/bench"
	"github.com/bulkhead-dev/bulkhead/lab/cluster"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "bulkhead-lab",
		Short:         "A real Kubernetes control plane with fake nodes and emulated agent traffic",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newUpCommand(), newCtlCommand(), newBenchCommand())
	return root
}

func newUpCommand() *cobra.Command {
	opts := cluster.DefaultOptions()
	var memoryLimit string
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the lab and run it in the foreground until interrupted",
		Long: `Start etcd, kube-apiserver, kube-controller-manager, kube-scheduler, fake kubelets for
--nodes nodes and the behaviour emulator; create --services Deployments+Services holding
--nodes × --pods-per-node filler pods; print one "bulkhead-lab: ready" line with the admin
kubeconfig's path; run until SIGINT or SIGTERM, then stop everything.

With --apiservers N > 1 (needs root), N kube-apiserver replicas share etcd, each at its own
address in a network namespace of its own that the lab creates, behind the lab's TCP load
balancer on 127.0.0.1 (the kubeconfig's server; connection-level round robin); the
default/kubernetes EndpointSlice lists them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if memoryLimit != "" {
				q, err := resource.ParseQuantity(memoryLimit)
				if err != nil {
					return fmt.Errorf("--apiserver-memory-limit %q: %w", memoryLimit, err)
				}
				opts.APIServerMemoryLimit = q.Value()
			}
			return cluster.Up(cmd.Context(), opts, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Dir, "dir", opts.Dir, "directory for state, logs and the admin kubeconfig")
	f.IntVar(&opts.Nodes, "nodes", opts.Nodes, "number of fake nodes")
	f.IntVar(&opts.PodsPerNode, "pods-per-node", opts.PodsPerNode, "filler pods per node (spread over the services' Deployments)")
	f.IntVar(&opts.Services, "services", opts.Services, "Services, each backed by a Deployment (every fifth is headless)")
	f.IntVar(&opts.MaxRequestsInflight, "max-requests-inflight", opts.MaxRequestsInflight, "kube-apiserver --max-requests-inflight")
	f.IntVar(&opts.MaxMutatingRequestsInflight, "max-mutating-requests-inflight", opts.MaxMutatingRequestsInflight, "kube-apiserver --max-mutating-requests-inflight")
	f.IntVar(&opts.Port, "port", opts.Port, "the kubeconfig's port on 127.0.0.1: kube-apiserver's, or the load balancer's with --apiservers > 1 (0 picks a free one)")
	f.IntVar(&opts.APIServers, "apiservers", opts.APIServers, "kube-apiserver replicas; more than one run behind the lab's load balancer (needs root)")
	f.StringVar(&memoryLimit, "apiserver-memory-limit", "", "confine each kube-apiserver's memory like a pod limit (e.g. 2Gi): past it the OOM killer ends it and the lab restarts it")
	f.Float64Var(&opts.APIServerCPUs, "apiserver-cpus", 0, "confine each kube-apiserver's CPU like a pod's CPU limit (a CFS quota of this many cores, e.g. 1.5); 0: no limit")
	return cmd
}

func newCtlCommand() *cobra.Command {
	dir := cluster.DefaultOptions().Dir
	ctl := &cobra.Command{
		Use:   "ctl",
		Short: "Control a running lab (fault injection, status)",
	}
	ctl.PersistentFlags().StringVar(&dir, "dir", dir, "directory of the running lab")
	call := func(cmd *cobra.Command, method, path string) error {
		ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Minute)
		defer cancel()
		body, err := cluster.Call(ctx, dir, method, path)
		if err != nil {
			return err
		}
		_, err = cmd.OutOrStdout().Write(body)
		return err
	}
	replica := -1
	apiserver := &cobra.Command{
		Use:       "apiserver stop|start",
		Short:     "Stop or start kube-apiserver (every replica, or --replica I); etcd, fake nodes and everything else keep running",
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		ValidArgs: []string{"stop", "start"},
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/apiserver/" + args[0]
			if cmd.Flags().Changed("replica") {
				path += fmt.Sprintf("?replica=%d", replica)
			}
			return call(cmd, http.MethodPost, path)
		},
	}
	apiserver.Flags().IntVar(&replica, "replica", replica, "only this replica (0-based, as `ctl status` numbers them); default every replica")
	balancer := &cobra.Command{
		Use:   "balancer",
		Short: "Print the load balancer's connections and the replica each reached, as JSON (--apiservers > 1)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd, http.MethodGet, "/balancer")
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Print the lab's status as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd, http.MethodGet, "/status")
		},
	}
	stats := &cobra.Command{
		Use:   "stats",
		Short: "Print the behaviour emulator's request statistics as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reset, _ := cmd.Flags().GetBool("reset")
			return call(cmd, http.MethodGet, fmt.Sprintf("/stats?reset=%t", reset))
		},
	}
	stats.Flags().Bool("reset", false, "start a new statistics window after printing")
	ctl.AddCommand(apiserver, status, stats, balancer)
	return ctl
}

func newBenchCommand() *cobra.Command {
	bench := &cobra.Command{
		Use:   "bench",
		Short: "Benchmarks of the lab that print tables",
	}
	opts := labbench.ScalingOptions{
		Dir: ".lab/bench", Nodes: 200, PodsPerNode: 20, Services: 50,
		Steps: []int{20, 50, 100, 200}, Every: 10 * time.Second, Window: 60 * time.Second, ProbeRate: 10,
	}
	scaling := &cobra.Command{
		Use:   "scaling",
		Short: "How the apiserver degrades as more agents LIST all pods (the seed incident in miniature)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Window <= 0 || opts.Every <= 0 || opts.ProbeRate <= 0 {
				return fmt.Errorf("--window, --every and --probe-rate must be positive")
			}
			return labbench.Scaling(cmd.Context(), opts, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := scaling.Flags()
	f.StringVar(&opts.Dir, "dir", opts.Dir, "directory for the benchmark's lab")
	f.IntVar(&opts.Nodes, "nodes", opts.Nodes, "fake nodes")
	f.IntVar(&opts.PodsPerNode, "pods-per-node", opts.PodsPerNode, "filler pods per node")
	f.IntVar(&opts.Services, "services", opts.Services, "filler services")
	f.IntSliceVar(&opts.Steps, "steps", opts.Steps, "agent counts to measure, increasing")
	f.DurationVar(&opts.Every, "every", opts.Every, "each agent LISTs all pods this often")
	f.DurationVar(&opts.Window, "window", opts.Window, "measurement window per step")
	f.IntVar(&opts.ProbeRate, "probe-rate", opts.ProbeRate, "probe GETs per second")
	startupOpts := labbench.StartupOptions{Dir: ".lab/bench", Nodes: 200, PodsPerNode: 20, Services: 50, APIServers: 3, Settle: 30 * time.Second}
	startup := &cobra.Command{
		Use:   "startup",
		Short: "How long a lab takes to be ready and how much memory each of its processes holds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return labbench.Startup(cmd.Context(), startupOpts, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f = startup.Flags()
	f.StringVar(&startupOpts.Dir, "dir", startupOpts.Dir, "directory for the benchmark's lab")
	f.IntVar(&startupOpts.Nodes, "nodes", startupOpts.Nodes, "fake nodes")
	f.IntVar(&startupOpts.PodsPerNode, "pods-per-node", startupOpts.PodsPerNode, "filler pods per node")
	f.IntVar(&startupOpts.Services, "services", startupOpts.Services, "filler services")
	f.IntVar(&startupOpts.APIServers, "apiservers", startupOpts.APIServers, "kube-apiserver replicas")
	f.DurationVar(&startupOpts.Settle, "settle", startupOpts.Settle, "how long the ready lab runs before its memory is read")
	bench.AddCommand(scaling, startup)
	return bench
}
