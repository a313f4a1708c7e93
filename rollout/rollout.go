package rollout

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/bulkhead-dev/bulkhead/apf"
	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/execute"
	"github.com/bulkhead-dev/bulkhead/rollout/plan"
	"github.com/bulkhead-dev/bulkhead/rollout/soak"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// Options are `bulkhead rollout apply`'s settings.
type Options struct {
	Waves string
	Soak  time.Duration
	// Budget is the share of the API servers' capacity per resource the DaemonSet may use at
	// 100% (check.DefaultBudget when nil).
	Budget check.Budget
	// ServerSeats is one API server's seats (max-requests-inflight +
	// max-mutating-requests-inflight); 0 reads it from the servers' APF metrics.
	ServerSeats int
	// APIServerCPUs and APIServerMemory are one API server's CPU (cores) and memory limit
	// (bytes) when its metrics do not tell (no GOMAXPROCS from a CPU limit, no GOMEMLIMIT); 0
	// reads them from the metrics.
	APIServerCPUs, APIServerMemory float64
}

// baselineForCreate is how long a new DaemonSet's rollout measures the servers before wave 1:
// the reference of each wave's CPU difference, and what the servers already use.
const baselineForCreate = 30 * time.Second

// Validate checks options before anything is read from or written to the cluster.
func (o Options) Validate() ([]plan.Wave, error) {
	waves, err := plan.ParseWaves(o.Waves)
	if err != nil {
		return nil, err
	}
	if o.Soak <= 0 {
		return nil, fmt.Errorf("--soak %v must be positive", o.Soak)
	}
	for r, share := range o.Budget {
		if share <= 0 || share > 100 || math.IsNaN(share) {
			return nil, fmt.Errorf("--budget %s=%v%% must be within (0, 100%%]", r, share)
		}
	}
	switch {
	case o.ServerSeats < 0:
		return nil, fmt.Errorf("--server-seats %d must not be negative", o.ServerSeats)
	case o.APIServerCPUs < 0 || math.IsNaN(o.APIServerCPUs):
		return nil, fmt.Errorf("--apiserver-cpus %v must not be negative", o.APIServerCPUs)
	case o.APIServerMemory < 0 || math.IsNaN(o.APIServerMemory):
		return nil, fmt.Errorf("--apiserver-memory %v must not be negative", o.APIServerMemory)
	}
	return waves, nil
}

func (o Options) budget() check.Budget {
	if o.Budget == nil {
		return check.DefaultBudget
	}
	return o.Budget
}

// Apply starts a guarded rollout of ds and runs it to its end, a pause, or ctx's end.
func Apply(ctx context.Context, e *Engine, ds *appsv1.DaemonSet, o Options) (state.State, error) {
	if _, err := e.Start(ctx, ds, o); err != nil {
		return state.State{}, err
	}
	return e.Run(ctx, ds.Namespace, ds.Name)
}

// Start begins a guarded rollout of ds (new, or an update of the DaemonSet of that name): the
// lane, the held DaemonSet and its first state. Every check happens before the first write: a
// bad manifest, bad options, a DaemonSet under another rollout, or one running as the default
// service account change nothing.
func (e *Engine) Start(ctx context.Context, ds *appsv1.DaemonSet, o Options) (state.State, error) {
	waves, err := o.Validate()
	if err != nil {
		return state.State{}, err
	}
	if err := execute.CheckServiceAccount(ds); err != nil {
		return state.State{}, err
	}
	current, err := e.Client.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{})
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

	nodes, err := e.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
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

	before, err := e.before(ctx)
	if err != nil {
		return state.State{}, err
	}
	perReplica, replicas := o.ServerSeats, 1
	if measured, n, err := serverSeats(ctx, e.Client, before); err == nil {
		replicas = n
		if perReplica == 0 {
			perReplica = measured
		}
	} else if perReplica == 0 {
		return state.State{}, err
	}
	budget := o.budget()
	laneSeats, err := execute.BudgetSeats(perReplica, budget[check.Seats])
	if err != nil {
		return state.State{}, err
	}
	capacity := capacityOf(before, o, perReplica, replicas)
	limits := budget.Limits(capacity)

	lane := execute.LaneNames(ds.Namespace, ds.Name)
	start := state.Start{
		ID:        fmt.Sprintf("%s-%04x", time.Now().UTC().Format("20060102-150405"), rand.IntN(1<<16)),
		WavesSpec: o.Waves, Targets: targets, Eligible: eligible, Soak: o.Soak, Budget: budget, Limits: limits,
		Lane: lane, OriginalStrategy: ds.Spec.UpdateStrategy, Before: soak.Baseline(before, lane),
	}
	if current == nil {
		start.Kind, start.NodeLabel = state.Create, execute.NodeLabelKey(ds.Namespace, ds.Name)
		start.BaselineSoak = min(o.Soak, baselineForCreate)
	} else {
		_, hash, err := execute.CurrentRevision(ctx, e.Client, current.Namespace, current.Name)
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
	seats, err := execute.EnsureLane(ctx, e.Client, lane, owner, execute.ServiceAccountOf(ds), perReplica, laneSeats)
	if err != nil {
		return state.State{}, err
	}
	e.say(ds.Namespace, ds.Name, fmt.Sprintf("rollout %s of %s/%s (%s): %d eligible nodes, waves %v; lane %s holds %d of %d seats per API server (%d replicas)",
		st.ID, ds.Namespace, ds.Name, st.Kind, eligible, targets, lane.PriorityLevel, seats, perReplica, replicas))
	e.say(ds.Namespace, ds.Name, "budget: "+describeLimits(limits))
	if current == nil {
		_, err = execute.StartCreate(ctx, e.Client, ds, st)
	} else {
		_, err = execute.StartUpdate(ctx, e.Client, current, ds.Spec.Template, st)
	}
	if err != nil {
		if delErr := execute.DeleteLane(context.WithoutCancel(ctx), e.Client, lane); delErr != nil {
			err = errors.Join(err, fmt.Errorf("remove the lane again: %w", delErr))
		}
		return state.State{}, err
	}
	return st, nil
}

// Resume continues a paused rollout, or one whose CLI died.
func Resume(ctx context.Context, e *Engine, namespace, name string) (state.State, error) {
	if _, err := execute.Transition(ctx, e.Client, namespace, name, func(s state.State) (state.State, error) { return s.Resume(time.Now()) }); err != nil {
		return state.State{}, err
	}
	return e.Run(ctx, namespace, name)
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

// before is the latest reading of the API servers from the meter (waiting for its first): the
// cluster as it was before this rollout acted, for judging other flows, and the servers'
// capacity.
func (e *Engine) before(ctx context.Context) (controlplane.Reading, error) {
	var r controlplane.Reading
	for attempt := 0; attempt < 3; attempt++ {
		if readings := e.Meter.Since(time.Time{}); len(readings) > 0 {
			r = readings[len(readings)-1]
			if r.Reachable() {
				return r, nil
			}
		}
		e.Meter.Wait(ctx)
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
	}
	var errs []string
	for _, rep := range r.Replicas {
		if rep.Error != "" {
			errs = append(errs, rep.Replica+": "+rep.Error)
		}
	}
	return r, fmt.Errorf("cannot read the API servers' metrics, and a rollout without them would be blind: %s", strings.Join(errs, "; "))
}

// capacityOf is the API servers' capacity and use, summed over replicas: CPU from GOMAXPROCS
// and memory from GOMEMLIMIT unless the options state them, seats from APF. What neither tells
// stays unknown (0), never infinite.
func capacityOf(before controlplane.Reading, o Options, seatsPerReplica, replicas int) check.Capacity {
	res := before.Resources
	c := check.Capacity{Seats: float64(seatsPerReplica * replicas), CPUUsed: res.CPUCores, MemoryUsed: res.ResidentBytes}
	switch {
	case o.APIServerCPUs > 0:
		c.CPU, c.CPUFrom = o.APIServerCPUs*float64(replicas), "--apiserver-cpus"
	case !slices.Contains(res.Missing, "cpu capacity") && res.CPUCapacityCores > 0:
		c.CPU, c.CPUFrom = res.CPUCapacityCores, "GOMAXPROCS"
	}
	switch {
	case o.APIServerMemory > 0:
		c.Memory, c.MemoryFrom = o.APIServerMemory*float64(replicas), "--apiserver-memory"
	case !slices.Contains(res.Missing, "memory limit") && res.MemoryLimitBytes > 0:
		c.Memory, c.MemoryFrom = res.MemoryLimitBytes, "GOMEMLIMIT"
	}
	return c
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
