package rollout

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/bulkhead-dev/bulkhead/apf"
	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
	"github.com/bulkhead-dev/bulkhead/rollout/execute"
	"github.com/bulkhead-dev/bulkhead/rollout/plan"
	"github.com/bulkhead-dev/bulkhead/rollout/soak"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// Options are `bulkhead rollout apply`'s settings.
type Options struct {
	Waves         string
	Soak          time.Duration
	BudgetPercent float64
	// Interval is the scrape interval of a soak; default 5 s.
	Interval time.Duration
	// ServerSeats is one API server's seats (max-requests-inflight +
	// max-mutating-requests-inflight); 0 reads it from the servers' APF metrics.
	ServerSeats int
	Limits      analyze.Limits
}

// Deps are the rollout's connections to the cluster.
type Deps struct {
	Client  kubernetes.Interface
	Scraper soak.Scraper
	// Log receives progress lines; Decisions each wave's final decision.
	Log       func(string)
	Decisions func(analyze.Decision)
	// Rollback, when set, gives the client a rollback runs with (BreakGlassRollback); nil
	// rolls back with Client.
	Rollback func(context.Context) kubernetes.Interface
}

// Validate checks options before anything is read from or written to the cluster.
func (o Options) Validate() ([]plan.Wave, error) {
	waves, err := plan.ParseWaves(o.Waves)
	if err != nil {
		return nil, err
	}
	if o.Soak <= 0 {
		return nil, fmt.Errorf("--soak %v must be positive", o.Soak)
	}
	if o.BudgetPercent <= 0 || o.BudgetPercent > 100 || math.IsNaN(o.BudgetPercent) {
		return nil, fmt.Errorf("--budget %v%% must be within (0, 100%%]", o.BudgetPercent)
	}
	if o.ServerSeats < 0 {
		return nil, fmt.Errorf("server seats %d must not be negative", o.ServerSeats)
	}
	return waves, nil
}

// Apply starts a guarded rollout of ds (new, or an update of the DaemonSet of that name) and
// runs it to its end, a pause, or ctx's end. Every check happens before the first write: a
// bad manifest, bad options, a DaemonSet under another rollout, or one running as the default
// service account change nothing.
func Apply(ctx context.Context, d Deps, ds *appsv1.DaemonSet, o Options) (state.State, error) {
	waves, err := o.Validate()
	if err != nil {
		return state.State{}, err
	}
	if err := execute.CheckServiceAccount(ds); err != nil {
		return state.State{}, err
	}
	current, err := d.Client.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		current = nil
	case err != nil:
		return state.State{}, fmt.Errorf("read DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
	default:
		if err := execute.CheckFree(current); err != nil {
			return state.State{}, err
		}
		if !equalSelectors(current.Spec.Selector, ds.Spec.Selector) {
			return state.State{}, fmt.Errorf("DaemonSet %s/%s: the manifest's selector differs from the live one, which is immutable", ds.Namespace, ds.Name)
		}
	}

	nodes, err := d.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return state.State{}, fmt.Errorf("list nodes: %w", err)
	}
	eligible := len(plan.Eligible(ds.Spec.Template.Spec, nodes.Items))
	steps, err := plan.Resolve(waves, eligible)
	if err != nil {
		return state.State{}, err
	}
	targets := make([]int, len(steps))
	for i, s := range steps {
		targets[i] = s.Target
	}

	before, err := readBefore(ctx, d.Scraper)
	if err != nil {
		return state.State{}, err
	}
	perReplica, replicas := o.ServerSeats, 1
	if measured, n, err := serverSeats(ctx, d.Client, before); err == nil {
		replicas = n
		if perReplica == 0 {
			perReplica = measured
		}
	} else if perReplica == 0 {
		return state.State{}, err
	}
	laneSeats, err := execute.BudgetSeats(perReplica, o.BudgetPercent)
	if err != nil {
		return state.State{}, err
	}

	lane := execute.LaneNames(ds.Namespace, ds.Name)
	start := state.Start{
		ID:        fmt.Sprintf("%s-%04x", time.Now().UTC().Format("20060102-150405"), rand.IntN(1<<16)),
		WavesSpec: o.Waves, Targets: targets, Eligible: eligible,
		Soak: o.Soak, BudgetPercent: o.BudgetPercent, BudgetSeats: float64(laneSeats * replicas),
		CapacitySeats: float64(perReplica * replicas),
		Lane:          lane, OriginalStrategy: ds.Spec.UpdateStrategy, Before: soak.Baseline(before, lane),
	}
	if current == nil {
		start.Kind, start.NodeLabel = state.Create, execute.NodeLabelKey(ds.Namespace, ds.Name)
	} else {
		_, hash, err := execute.CurrentRevision(ctx, d.Client, current.Namespace, current.Name)
		if err != nil {
			return state.State{}, err
		}
		start.Kind, start.OriginalHash, start.OriginalStrategy = state.Update, hash, current.Spec.UpdateStrategy
	}
	if start.OriginalStrategy.Type == "" {
		start.OriginalStrategy = defaultStrategy()
	}
	st, err := state.New(start, time.Now())
	if err != nil {
		return state.State{}, err
	}

	owner := "daemonset/" + ds.Namespace + "/" + ds.Name
	seats, err := execute.EnsureLane(ctx, d.Client, lane, owner, execute.ServiceAccountOf(ds), perReplica, laneSeats)
	if err != nil {
		return state.State{}, err
	}
	logf(d, "rollout %s of %s/%s (%s): %d eligible nodes, waves %v; lane %s holds %d of %d seats per API server (%d replicas)",
		st.ID, ds.Namespace, ds.Name, st.Kind, eligible, targets, lane.PriorityLevel, seats, perReplica, replicas)
	if current == nil {
		_, err = execute.StartCreate(ctx, d.Client, ds, st)
	} else {
		_, err = execute.StartUpdate(ctx, d.Client, current, ds.Spec.Template, st)
	}
	if err != nil {
		if delErr := execute.DeleteLane(context.WithoutCancel(ctx), d.Client, lane); delErr != nil {
			err = errors.Join(err, fmt.Errorf("remove the lane again: %w", delErr))
		}
		return state.State{}, err
	}
	return run(ctx, d, o, before, ds.Namespace, ds.Name)
}

// Resume continues a paused rollout, or one whose CLI died.
func Resume(ctx context.Context, d Deps, o Options, namespace, name string) (state.State, error) {
	st, err := execute.Transition(ctx, d.Client, namespace, name, func(s state.State) (state.State, error) { return s.Resume(time.Now()) })
	if err != nil {
		return state.State{}, err
	}
	// The other flows are judged against the cluster before the rollout, as recorded.
	return run(ctx, d, o, soak.BeforeReading(st.Before), namespace, name)
}

// Pause stops a rollout after its current action.
func Pause(ctx context.Context, client kubernetes.Interface, namespace, name string) (state.State, error) {
	return execute.Transition(ctx, client, namespace, name, func(s state.State) (state.State, error) { return s.Pause(time.Now()) })
}

// Abort makes a rollout roll back; the running (or next resumed) CLI carries it out.
func Abort(ctx context.Context, client kubernetes.Interface, namespace, name string) (state.State, error) {
	return execute.Transition(ctx, client, namespace, name, func(s state.State) (state.State, error) {
		return s.Abort("aborted by user", time.Now())
	})
}

// Status reads a rollout's state from its DaemonSet.
func Status(ctx context.Context, client kubernetes.Interface, namespace, name string) (state.State, error) {
	_, st, err := execute.Load(ctx, client, namespace, name)
	return st, err
}

func run(ctx context.Context, d Deps, o Options, before controlplane.Reading, namespace, name string) (state.State, error) {
	var holds holdReporter
	progress := func(dec analyze.Decision) {
		if holds.report(dec, time.Now()) {
			logf(d, "%s", dec.Headline)
		}
	}
	runner := &execute.Runner{
		Client: d.Client,
		Watcher: &soak.Soaker{Scraper: d.Scraper, Client: d.Client, Before: before, Interval: o.Interval, Limits: o.Limits,
			Progress: progress},
		Log:            d.Log,
		Decisions:      d.Decisions,
		RollbackClient: d.Rollback,
	}
	return runner.Run(ctx, namespace, name)
}

// readBefore takes two scrapes two seconds apart: the cluster as it was before this rollout
// acted, for judging other flows, and the servers' seat capacity.
func readBefore(ctx context.Context, s soak.Scraper) (controlplane.Reading, error) {
	first := s.Scrape(ctx)
	select {
	case <-ctx.Done():
		return controlplane.Reading{}, ctx.Err()
	case <-time.After(2 * time.Second):
	}
	r := controlplane.Analyze(first, s.Scrape(ctx))
	if !r.Reachable() {
		var errs []string
		for _, rep := range r.Replicas {
			if rep.Error != "" {
				errs = append(errs, rep.Replica+": "+rep.Error)
			}
		}
		return r, fmt.Errorf("cannot read the API servers' metrics, and a rollout without them would be blind: %s", strings.Join(errs, "; "))
	}
	return r, nil
}

// serverSeats is one API server's seat capacity (the smallest over replicas), recovered from
// the priority levels' shares and the nominal seats each replica reports (apf.ServerSeats).
func serverSeats(ctx context.Context, client kubernetes.Interface, r controlplane.Reading) (int, int, error) {
	levels, err := client.FlowcontrolV1().PriorityLevelConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, 0, fmt.Errorf("read priority levels: %w", err)
	}
	seats, replicas := math.MaxInt, 0
	var errs []error
	for _, rep := range r.Replicas {
		if rep.Load == nil {
			continue
		}
		nominal := map[string]float64{}
		for _, l := range rep.Load.PriorityLevels {
			nominal[l.PriorityLevel] = l.NominalLimitSeats
		}
		n, err := apf.ServerSeats(levels.Items, nominal)
		if err != nil {
			errs = append(errs, fmt.Errorf("API server %s: %w", rep.Replica, err))
			continue
		}
		seats = min(seats, n)
		replicas++
	}
	if replicas == 0 {
		return 0, 0, fmt.Errorf("no API server's seat capacity could be read (%w); pass --server-seats", errors.Join(errs...))
	}
	return seats, replicas, nil
}

// defaultStrategy is what the API server would have given a DaemonSet without one.
func defaultStrategy() appsv1.DaemonSetUpdateStrategy {
	one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	return appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &one, MaxSurge: &zero}}
}

func equalSelectors(a, b *metav1.LabelSelector) bool {
	sa, errA := metav1.LabelSelectorAsSelector(a)
	sb, errB := metav1.LabelSelectorAsSelector(b)
	return errA == nil && errB == nil && sa.String() == sb.String()
}

func logf(d Deps, format string, args ...any) {
	if d.Log != nil {
		d.Log(fmt.Sprintf(format, args...))
	}
}

// ParseBudget reads --budget: "10%" or "10" (percent of the API servers' seats), in (0, 100].
func ParseBudget(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%")), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("--budget %q: want a percentage such as 10%%", s)
	}
	if v <= 0 || v > 100 {
		return 0, fmt.Errorf("--budget %q must be within (0, 100%%]", s)
	}
	return v, nil
}
