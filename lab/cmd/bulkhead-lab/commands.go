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
default/kubernetes EndpointSlice lists them. With --endpoint balancer it lists the balancer's
one address instead, in a network namespace of the lab's, and only the balancer reaches the
replicas, as behind a managed control plane's (EKS, GKE, AKS) load-balanced address.

With --prometheus PATH the lab also runs that Prometheus on 127.0.0.1, storing under --dir and
scraping every replica's /metrics directly (job "apiserver", instance = the replica's address)
with a client certificate of the system:monitoring group.

With --background busy, once the lab is ready it adds the load of a production cluster's other
clients in namespace busy, each its own service account with only the RBAC it needs; ctl stats
reports their requests, errors, 429s and latencies like any emulated agent's.`,
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
	f.StringVar(&opts.Endpoint, "endpoint", opts.Endpoint, "what the default/kubernetes EndpointSlice lists with --apiservers > 1: replicas (each one's address) or balancer (the load balancer's one address, as a managed control plane's)")
	f.Float64Var(&opts.GoAwayChance, "goaway-chance", 0, "every kube-apiserver's --goaway-chance (0 to 0.02), with which managed providers rebalance long-lived HTTP/2 connections; 0: not passed")
	f.StringVar(&opts.Background, "background", opts.Background, "other clients' load, added once the lab is ready: none, or busy (in namespace busy: a CI identity creating and deleting pods in bursts, a controller re-listing pods, a watch-heavy client, a job reading every minute)")
	f.StringVar(&opts.Prometheus, "prometheus", "", "path of a prometheus binary (make prometheus) to run on 127.0.0.1, scraping every kube-apiserver's /metrics every 5s as job \"apiserver\" (ctl status gives its URL); empty: none")
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
