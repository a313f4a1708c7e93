package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/internal/writable"
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
		source                           controlplane.SourceOptions
	)
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Roll a DaemonSet out in node waves inside an APF lane, rolling back when the fleet would not fit",
		Long: `rollout puts a DaemonSet's service account in an API Priority and Fairness lane of its own, rolls
the DaemonSet out in node waves, measures each wave's cost to the API servers, predicts the cost at
100% of the fleet in CPU, memory and seats, and rolls back by itself when any would exceed its
--budget, an SLO breaks, other flows suffer, or agents do not become Ready.

Manual: ` + ManualURL + `#rollout`,
		Example: `  bulkhead rollout apply -f agent.yaml --report rollout.html
  bulkhead rollout status agent -n telemetry -o json
  bulkhead rollout abort agent -n telemetry`,
	}
	apply := &cobra.Command{
		Use:   "apply -f agent.yaml",
		Short: "Start a guarded rollout of a new or changed DaemonSet and follow it to its end",
		Long: `apply reads a manifest (a file, or - for stdin) holding exactly one DaemonSet and, optionally, the
objects it ships with: its ServiceAccount, RBAC, ConfigMaps, a namespace (a Helm chart's output,
say). Every object is checked by the API server first (a server-side dry run: nothing changes if
any is refused); then the other objects are applied (server-side apply), and the DaemonSet gets
the guarded rollout. Checks that need no cluster (the manifest, the flags, the DaemonSet's own
service account) run before bulkhead contacts it.`,
		Example: `  bulkhead rollout apply -f agent.yaml --report rollout.html
  bulkhead rollout apply -f agent.yaml --waves 1%,5%,25%,100% --soak 60s --budget cpu=20%,memory=25%,seats=10%
  bulkhead rollout apply -f agent.yaml --apiserver-cpus 4 --apiserver-memory 8Gi   # a managed control plane that hides them
  helm template telemetry ./chart | bulkhead rollout apply -f - -n telemetry`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("-f: the manifest is required (a file, or - for stdin)")
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
			if err := source.Validate(); err != nil {
				return err
			}
			data, err := readManifest(cmd, file)
			if err != nil {
				return err
			}
			ns, explicit, err := kube.ToRawKubeConfigLoader().Namespace()
			if err != nil {
				return fmt.Errorf("namespace: %w", err)
			}
			bundle, err := execute.ParseBundle(data, ns, explicit)
			if err != nil {
				return err
			}
			ds := bundle.DaemonSet
			if err := execute.CheckServiceAccount(ds); err != nil {
				return err
			}
			engine, err := rolloutEngine(cmd, kube, interval, source)
			if err != nil {
				return err
			}
			if err := applyBundle(cmd, kube, bundle, ns); err != nil {
				return err
			}
			return followRollout(cmd, engine, ds.Namespace, ds.Name, reportFile, func(ctx context.Context) (state.State, error) {
				return rollout.Apply(ctx, engine, ds, opts)
			})
		},
	}
	af := apply.Flags()
	af.StringVarP(&file, "filename", "f", "", "manifest (YAML or JSON, - for stdin): one DaemonSet and the objects it ships with")
	af.StringVar(&opts.Waves, "waves", plan.DefaultWaves, "cumulative wave sizes: percentages of eligible nodes or node counts, ending at 100%")
	af.DurationVar(&opts.Soak, "soak", time.Minute, "how long to watch each wave once its agents are Ready")
	af.StringVar(&budget, "budget", check.DefaultBudget.String(), "share of the API servers' capacity the DaemonSet may use at 100%, per resource (cpu, memory, seats); a bare share applies to all")
	af.DurationVar(&interval, "interval", 5*time.Second, "how often to scrape the API servers during a soak")
	af.IntVar(&opts.ServerSeats, "server-seats", 0, "one API server's seats (max-requests-inflight + max-mutating-requests-inflight); 0 reads them from its metrics")
	af.Float64Var(&opts.APIServerCPUs, "apiserver-cpus", 0, "one API server's CPU capacity in cores, when its metrics do not show it (GOMAXPROCS); 0 reads it from the metrics")
	af.StringVar(&memory, "apiserver-memory", "", "one API server's memory limit (e.g. 8Gi), when its metrics do not show it (GOMEMLIMIT)")
	af.StringVar(&reportFile, reportFlag, "", reportUsage)
	addMetricsSourceFlags(af, &source)

	resume := &cobra.Command{
		Use:     "resume <daemonset>",
		Short:   "Continue a paused rollout, or one whose bulkhead died",
		Example: `  bulkhead rollout resume agent -n telemetry --report rollout.html`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval <= 0 {
				return fmt.Errorf("--interval %v must be positive", interval)
			}
			if err := checkReport(reportFile); err != nil {
				return err
			}
			if err := source.Validate(); err != nil {
				return err
			}
			ns, _, err := kube.ToRawKubeConfigLoader().Namespace()
			if err != nil {
				return fmt.Errorf("namespace: %w", err)
			}
			engine, err := rolloutEngine(cmd, kube, interval, source)
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
	addMetricsSourceFlags(resume.Flags(), &source)

	var format string
	status := &cobra.Command{
		Use:   "status <daemonset>",
		Short: "Show a rollout's state, from any machine",
		Long: `status reads the rollout's state from its DaemonSet (annotation rollout.bulkhead.dev/state) and
describes it; -o json or -o yaml prints the state itself, as stored, for scripts.`,
		Example: `  bulkhead rollout status agent -n telemetry
  bulkhead rollout status agent -n telemetry -o json | jq -r .phase`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
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
			if format != formatText {
				if err := printStructured(cmd.OutOrStdout(), format, st); err != nil {
					return err
				}
			} else {
				fmt.Fprint(cmd.OutOrStdout(), rollout.Describe(ns, args[0], st, time.Now()))
			}
			return writeReport(cmd, reportFile, ns, args[0], st)
		},
	}
	status.Flags().StringVar(&reportFile, reportFlag, "", reportUsage)
	addOutputFlag(status, &format)
	transition := func(use, short string, f func(context.Context, kubernetes.Interface, string, string) (state.State, error)) *cobra.Command {
		return &cobra.Command{
			Use:     use + " <daemonset>",
			Short:   short,
			Example: "  bulkhead rollout " + use + " agent -n telemetry",
			Args:    cobra.ExactArgs(1),
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
func rolloutEngine(cmd *cobra.Command, kube *genericclioptions.ConfigFlags, interval time.Duration, source controlplane.SourceOptions) (*rollout.Engine, error) {
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
	scraper, err := controlplane.NewSource(cfg, source)
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

// checkReport refuses a --report path before the rollout starts: a rollout must not run to its
// end only to fail writing its report.
func checkReport(file string) error {
	if file == "" {
		return nil
	}
	if err := report.CheckPath(file); err != nil {
		return err
	}
	_, jsonPath := report.Paths(file) // both files go to the same directory
	if err := writable.Dir(filepath.Dir(jsonPath)); err != nil {
		return fmt.Errorf("--report %s: %w", file, err)
	}
	return nil
}

// readManifest reads -f: a file, or stdin for -.
func readManifest(cmd *cobra.Command, file string) ([]byte, error) {
	if file == "-" {
		data, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return nil, fmt.Errorf("read the manifest from stdin: %w", err)
		}
		return data, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return data, nil
}

// applyBundle has the API server check every object of the manifest (a dry run), then applies
// the objects the DaemonSet ships with; the DaemonSet itself is left for the guarded rollout.
func applyBundle(cmd *cobra.Command, kube *genericclioptions.ConfigFlags, b *execute.Bundle, namespace string) error {
	cfg, err := clusterConfig(kube)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	mapper, err := kube.ToRESTMapper()
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	applier := &execute.Applier{Dynamic: dyn, Mapper: mapper, Namespace: namespace}
	ctx := commandContext(cmd)
	deferred, err := applier.Check(ctx, b)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	for _, name := range deferred {
		fmt.Fprintf(out, "%s: its namespace is in the manifest and does not exist yet; the API server checks it when it is applied\n", name)
	}
	applied, err := applier.ApplyOthers(ctx, b)
	for _, name := range applied {
		fmt.Fprintf(out, "%s applied\n", name)
	}
	return err
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
	if s, ok := engine.Meter.Scraper.(*controlplane.Scraper); ok { // Prometheus needs no discovery
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
