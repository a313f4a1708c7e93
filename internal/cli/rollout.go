package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"

	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/rollout"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/execute"
	"github.com/bulkhead-dev/bulkhead/rollout/plan"
	"github.com/bulkhead-dev/bulkhead/rollout/report"
	"github.com/bulkhead-dev/bulkhead/rollout/soak"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

func newRolloutCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	var (
		file, budget, reportFile, memory string
		interval                         = 5 * time.Second
		opts                             = rollout.Options{Waves: plan.DefaultWaves, Soak: rollout.DefaultSoak}
	)
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Roll a DaemonSet out in node waves inside an APF lane, rolling back when the fleet would not fit",
		Long: `rollout puts a DaemonSet's service account in an API Priority and Fairness lane of its own, rolls
the DaemonSet out in node waves, measures each wave's cost to the API servers, predicts the cost at
100% of the fleet in CPU, memory and seats, and rolls back by itself when any would exceed its
--budget, an SLO breaks, other flows suffer, or agents do not become Ready. See rollout/README.md.`,
	}
	apply := &cobra.Command{
		Use:   "apply -f daemonset.yaml",
		Short: "Start a guarded rollout of a new or changed DaemonSet and follow it to its end",
		Example: `  bulkhead rollout apply -f agent-ds.yaml --report rollout.html
  bulkhead rollout apply -f agent-ds.yaml --waves 1%,5%,25%,100% --soak 60s --budget cpu=20%,memory=25%,seats=10%
  bulkhead rollout apply -f agent-ds.yaml --apiserver-cpus 4 --apiserver-memory 8Gi   # a managed control plane that hides them`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("-f: the DaemonSet manifest is required")
			}
			var err error
			if opts.Budget, err = check.ParseBudget(budget); err != nil {
				return err
			}
			if opts.APIServerMemory, err = parseMemory(memory); err != nil {
				return err
			}
			if _, err := opts.Validate(); err != nil {
				return err
			}
			if interval <= 0 {
				return fmt.Errorf("--interval %v must be positive", interval)
			}
			if err := checkReport(reportFile); err != nil {
				return err
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("read manifest: %w", err)
			}
			ns, explicit, err := kube.ToRawKubeConfigLoader().Namespace()
			if err != nil {
				return fmt.Errorf("namespace: %w", err)
			}
			ds, err := execute.ParseManifest(data, ns, explicit)
			if err != nil {
				return err
			}
			engine, err := rolloutEngine(cmd, kube, interval)
			if err != nil {
				return err
			}
			return followRollout(cmd, engine, ds.Namespace, ds.Name, reportFile, func(ctx context.Context) (state.State, error) {
				return rollout.Apply(ctx, engine, ds, opts)
			})
		},
	}
	af := apply.Flags()
	af.StringVarP(&file, "filename", "f", "", "DaemonSet manifest (YAML or JSON)")
	af.StringVar(&opts.Waves, "waves", plan.DefaultWaves, "cumulative wave sizes: percentages of eligible nodes or node counts, ending at 100%")
	af.DurationVar(&opts.Soak, "soak", time.Minute, "how long to watch each wave once its agents are Ready")
	af.StringVar(&budget, "budget", check.DefaultBudget.String(), "share of the API servers' capacity the DaemonSet may use at 100%, per resource (cpu, memory, seats); a bare share applies to all")
	af.DurationVar(&interval, "interval", 5*time.Second, "how often to scrape the API servers during a soak")
	af.IntVar(&opts.ServerSeats, "server-seats", 0, "one API server's seats (max-requests-inflight + max-mutating-requests-inflight); 0 reads them from its metrics")
	af.Float64Var(&opts.APIServerCPUs, "apiserver-cpus", 0, "one API server's CPU capacity in cores, when its metrics do not show it (GOMAXPROCS); 0 reads it from the metrics")
	af.StringVar(&memory, "apiserver-memory", "", "one API server's memory limit (e.g. 8Gi), when its metrics do not show it (GOMEMLIMIT)")
	af.StringVar(&reportFile, reportFlag, "", reportUsage)

	resume := &cobra.Command{
		Use:   "resume <daemonset>",
		Short: "Continue a paused rollout, or one whose bulkhead died",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkReport(reportFile); err != nil {
				return err
			}
			ns, _, err := kube.ToRawKubeConfigLoader().Namespace()
			if err != nil {
				return fmt.Errorf("namespace: %w", err)
			}
			if interval <= 0 {
				return fmt.Errorf("--interval %v must be positive", interval)
			}
			engine, err := rolloutEngine(cmd, kube, interval)
			if err != nil {
				return err
			}
			return followRollout(cmd, engine, ns, args[0], reportFile, func(ctx context.Context) (state.State, error) {
				return rollout.Resume(ctx, engine, ns, args[0])
			})
		},
	}
	resume.Flags().DurationVar(&interval, "interval", 5*time.Second, "how often to scrape the API servers during a soak")
	resume.Flags().StringVar(&reportFile, reportFlag, "", reportUsage)

	status := &cobra.Command{
		Use:   "status <daemonset>",
		Short: "Show a rollout's state, from any machine",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkReport(reportFile); err != nil {
				return err
			}
			client, ns, err := rolloutClient(cmd, kube)
			if err != nil {
				return err
			}
			st, err := rollout.Status(cmd.Context(), client, ns, args[0])
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), rollout.Describe(ns, args[0], st, time.Now()))
			return writeReport(cmd, reportFile, ns, args[0], st)
		},
	}
	status.Flags().StringVar(&reportFile, reportFlag, "", reportUsage)
	transition := func(use, short string, f func(context.Context, kubernetes.Interface, string, string) (state.State, error)) *cobra.Command {
		return &cobra.Command{
			Use:   use + " <daemonset>",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				client, ns, err := rolloutClient(cmd, kube)
				if err != nil {
					return err
				}
				st, err := f(cmd.Context(), client, ns, args[0])
				if err != nil {
					return err
				}
				fmt.Fprint(cmd.OutOrStdout(), rollout.Describe(ns, args[0], st, time.Now()))
				return nil
			},
		}
	}
	cmd.AddCommand(apply, resume, status,
		transition("pause", "Stop a rollout after its current step", rollout.Pause),
		transition("abort", "Roll a rollout back (carried out by the running, or next resumed, bulkhead)", rollout.Abort))
	return cmd
}

func rolloutClient(cmd *cobra.Command, kube *genericclioptions.ConfigFlags) (kubernetes.Interface, string, error) {
	cfg, err := kube.ToRESTConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.UserAgent = "bulkhead-rollout/" + buildVersion()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes client: %w", err)
	}
	ns, _, err := kube.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("namespace: %w", err)
	}
	removeExpired(cmd, client)
	return client, ns, nil
}

// rolloutEngine is a rollout engine for one rollout of the CLI: its client, a meter scraping the
// API servers every interval until the command ends, and the break-glass route for a rollback.
func rolloutEngine(cmd *cobra.Command, kube *genericclioptions.ConfigFlags, interval time.Duration) (*rollout.Engine, error) {
	cfg, err := kube.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.UserAgent = "bulkhead-rollout/" + buildVersion()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	removeExpired(cmd, client)
	scraper, err := controlplane.NewScraper(cfg, controlplane.Options{})
	if err != nil {
		return nil, err
	}
	out := cmd.OutOrStdout()
	log := func(_, _, line string) { fmt.Fprintf(out, "%s %s\n", time.Now().Format("15:04:05"), line) }
	say := func(line string) { log("", "", line) }
	return &rollout.Engine{
		Client: client, Meter: &soak.Meter{Scraper: scraper, Interval: interval}, Log: log,
		Rollback: rollout.BreakGlassRollback(cfg, client, say),
	}, nil
}

// parseMemory reads --apiserver-memory: a Kubernetes quantity of bytes, or nothing.
func parseMemory(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	q, err := resource.ParseQuantity(s)
	if err != nil || q.Sign() <= 0 {
		return 0, fmt.Errorf("--apiserver-memory %q: want a positive quantity of bytes such as 8Gi", s)
	}
	return q.AsApproximateFloat64(), nil
}

const (
	reportFlag  = "report"
	reportUsage = "write the rollout's report: FILE as an HTML page with a chart, and FILE with a .json extension as JSON (FILE.json: JSON only)"
)

func checkReport(file string) error {
	if file == "" {
		return nil
	}
	return report.CheckPath(file)
}

// writeReport writes the report of st when --report was given.
func writeReport(cmd *cobra.Command, file, ns, name string, st state.State) error {
	if file == "" || st.ID == "" {
		return nil
	}
	written, err := report.WriteFiles(file, report.FromState(ns, name, st))
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "report: %s\n", strings.Join(written, ", "))
	return nil
}

// followRollout runs a rollout until it ends; Ctrl-C pauses it safely between steps. The
// report, when asked for, is written whatever the end: complete, rolled back, paused.
func followRollout(cmd *cobra.Command, engine *rollout.Engine, ns, name, reportFile string, run func(context.Context) (state.State, error)) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if s, ok := engine.Meter.Scraper.(*controlplane.Scraper); ok {
		s.WaitForDiscovery(ctx, 5*time.Second)
	}
	meterCtx, stopMeter := context.WithCancel(ctx)
	defer stopMeter()
	go engine.Meter.Run(meterCtx)
	defer engine.Close()
	st, err := run(ctx)
	if ctx.Err() != nil { // interrupted (here, or by main's own signal handler)
		pauseCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		paused, perr := rollout.Pause(pauseCtx, engine.Client, ns, name)
		if perr != nil {
			return errors.Join(err, fmt.Errorf("interrupted, and could not pause: %w", perr))
		}
		fmt.Fprintf(cmd.OutOrStdout(), "interrupted: rollout paused; `bulkhead rollout resume %s -n %s` continues it\n", name, ns)
		return writeReport(cmd, reportFile, ns, name, paused)
	}
	if err != nil {
		return errors.Join(err, writeReport(cmd, reportFile, ns, name, st))
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s/%s: %s\n", ns, name, st.Phase)
	if err := writeReport(cmd, reportFile, ns, name, st); err != nil {
		return err
	}
	if st.Phase == state.RolledBack {
		return fmt.Errorf("rollout of %s/%s rolled back: %s", ns, name, st.Reason)
	}
	return nil
}
