package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/bulkhead-dev/bulkhead/controller"
	"github.com/bulkhead-dev/bulkhead/controller/hold"
	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/rollout"
	"github.com/bulkhead-dev/bulkhead/rollout/soak"
)

func newControllerCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	var (
		c          = controller.Config{LeaderElect: true, LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
		qps, burst int
		source     controlplane.SourceOptions
	)
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run bulkhead in the cluster: guard every DaemonSet a RolloutPolicy selects, however it is applied",
		Long: `controller runs the in-cluster half of bulkhead. DaemonSets that a RolloutPolicy in guard mode
selects are held by admission (bulkhead install --controller installs it) until the controller rolls
them out in guarded waves; with compartments on, their service accounts keep standing APF lanes
afterwards. Replicas share the work through a Lease. Metrics and health listen on 127.0.0.1 unless
told otherwise (the Deployment bulkhead install --controller creates opens them to the pod network).
It normally runs in a pod, with the pod's service account; run outside, it uses your kubeconfig.

Manual: ` + ManualURL + `#controller`,
		Example: `  bulkhead install --controller     # the Deployment that runs it, once, as cluster admin
  bulkhead controller --leader-elect=false --metrics-bind-address 127.0.0.1:9090   # one replica, outside the cluster`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c.Workers < 1 {
				return fmt.Errorf("--workers %d must be at least 1", c.Workers)
			}
			if c.MaxRollouts < 0 {
				return fmt.Errorf("--max-rollouts %d must not be negative", c.MaxRollouts)
			}
			if qps <= 0 || burst < qps {
				return fmt.Errorf("--kube-api-qps %d and --kube-api-burst %d: want 0 < qps ≤ burst", qps, burst)
			}
			if c.Housekeeping <= 0 {
				return fmt.Errorf("--housekeeping %s must be positive", c.Housekeeping)
			}
			if err := source.Validate(); err != nil {
				return err
			}
			cfg, err := clusterConfig(kube)
			if err != nil {
				return err
			}
			cfg.QPS, cfg.Burst, cfg.UserAgent = float32(qps), burst, "bulkhead-controller"
			c.REST = cfg
			if c.Identity == "" {
				host, _ := os.Hostname()
				c.Identity = fmt.Sprintf("%s_%d", host, os.Getpid())
			}
			errOut := cmd.ErrOrStderr()
			c.Log = func(line string) {
				fmt.Fprintf(errOut, "%s bulkhead controller: %s\n", time.Now().UTC().Format(time.RFC3339), line)
			}
			ctx, stop := signal.NotifyContext(commandContext(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			engine, err := controllerEngine(ctx, cfg, source, c.Log)
			if err != nil {
				return err
			}
			defer engine.Close()
			c.Engine = engine
			return controller.Run(ctx, c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.MetricsAddr, "metrics-bind-address", "127.0.0.1:8080", "address of the Prometheus /metrics endpoint")
	f.StringVar(&c.HealthAddr, "health-bind-address", "127.0.0.1:8081", "address of /healthz and /readyz")
	f.BoolVar(&c.LeaderElect, "leader-elect", true, "share the work with other replicas through a Lease (one acts at a time)")
	f.StringVar(&c.LeaseNamespace, "lease-namespace", hold.ControllerNamespace, "namespace of the leader Lease")
	f.StringVar(&c.LeaseName, "lease-name", "bulkhead-controller", "name of the leader Lease")
	f.StringVar(&c.Identity, "id", os.Getenv("POD_NAME"), "this replica's name in the Lease (default: $POD_NAME, else host_pid)")
	f.IntVar(&c.Workers, "workers", 4, "rollouts that may take a step at the same moment")
	f.IntVar(&c.MaxRollouts, "max-rollouts", 3, "rollouts that may be under way at once (each reserves its lane's seats); 0 for no limit")
	f.DurationVar(&c.Housekeeping, "housekeeping", 30*time.Second, "how often policy status and compartments are recomputed from the caches")
	f.IntVar(&qps, "kube-api-qps", 20, "the controller's sustained requests per second to the API servers, all rollouts together")
	f.IntVar(&burst, "kube-api-burst", 40, "the controller's burst of requests to the API servers")
	addMetricsSourceFlags(f, &source)
	return cmd
}

// controllerEngine is the rollout core the controller drives: the controller's client, a meter
// of the API servers shared by every rollout (it finds the replicas for as long as ctx lives,
// and scrapes only while rollouts need it), and rollbacks through the break-glass lane.
func controllerEngine(ctx context.Context, cfg *rest.Config, source controlplane.SourceOptions, log func(string)) (*controller.RolloutEngine, error) {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	scraper, err := controlplane.NewSource(cfg, source)
	if err != nil {
		return nil, err
	}
	if s, ok := scraper.(*controlplane.Scraper); ok {
		s.Start(ctx)
	}
	return &controller.RolloutEngine{Engine: &rollout.Engine{
		Client: client, Meter: &soak.Meter{Scraper: scraper},
		Log:      func(ns, name, line string) { log(ns + "/" + name + ": " + line) },
		Rollback: rollout.BreakGlassRollback(cfg, client, log),
	}}, nil
}
