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
	// Mode is guard (the default: waves, gate, rollback) or observe (Adopt only: measure a
	// rollout the DaemonSet controller runs by itself and record what guard would have decided).
	Mode state.Mode
}

// DefaultSoak is how long each wave soaks when nothing says otherwise.
const DefaultSoak = time.Minute

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
	switch o.Mode {
	case "", state.Guard, state.Observe:
	default:
		return nil, fmt.Errorf("mode %q is not guard or observe", o.Mode)
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
	if o.Mode == state.Observe {
		return state.State{}, fmt.Errorf("observe mode measures a rollout the DaemonSet controller runs by itself; the controller adopts it")
	}
	if _, err := o.Validate(); err != nil {
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
	b, err := e.begin(ctx, ds, o)
	if err != nil {
		return state.State{}, err
	}
	if current == nil {
		b.start.Kind, b.start.NodeLabel = state.Create, execute.NodeLabelKey(ds.Namespace, ds.Name)
		b.start.BaselineSoak = min(o.Soak, baselineForCreate)
	} else {
		_, hash, err := execute.CurrentRevision(ctx, e.Client, current.Namespace, current.Name)
		if err != nil {
			return state.State{}, err
		}
		b.start.Kind, b.start.OriginalHash, b.start.OriginalStrategy = state.Update, hash, current.Spec.UpdateStrategy
	}
	if b.start.OriginalStrategy.Type == "" {
		b.start.OriginalStrategy = defaultStrategy()
	}
	stored, err := execute.ServerTemplate(ctx, e.Client, current, ds)
	if err != nil {
		return state.State{}, err
	}
	if b.start.Revision, err = execute.TemplateRevision(stored); err != nil {
		return state.State{}, err
	}
	st, err := state.New(b.start, time.Now())
	if err != nil {
		return state.State{}, err
	}
	if err := e.ensureLane(ctx, ds, &st, b); err != nil {
		return state.State{}, err
	}
	if current == nil {
		_, err = execute.StartCreate(ctx, e.Client, ds, st)
	} else {
		_, err = execute.StartUpdate(ctx, e.Client, current, ds.Spec.Template, st)
	}
	if err != nil {
		return state.State{}, errors.Join(err, e.removeLane(ctx, st.Lane))
	}
	return st, nil
}

// Adopt starts the rollout of a DaemonSet that is in the cluster already, as the controller
// finds it:
//   - guard: admission holds it (execute.HeldAnnotation). In one write, with the state, a new
//     DaemonSet's hold requirement becomes the rollout's node gate; an update is OnDelete with
//     its new template already. The strategy restored at the end is the one requested last.
//   - observe: the DaemonSet controller is rolling it out by itself. Its lane only measures
//     (execute.EnsureObserveLane) and nothing is held.
//
// A rollout of an earlier template that is still under way is superseded (controller/README.md,
// "A new template during a rollout"): an update's is handed over — the new rollout starts from
// its baseline, rolling back to the revision the fleet ran before either — and so is an
// observed one; a new DaemonSet's rolls back first (its nodes unlabelled, the DaemonSet kept),
// and the returned state says RollingBack: adopt again once it is RolledBack. Adopting a
// DaemonSet whose every pod already runs its template starts nothing: the hold is released and
// the returned state is empty.
func (e *Engine) Adopt(ctx context.Context, ds *appsv1.DaemonSet, o Options) (state.State, error) {
	if _, err := o.Validate(); err != nil {
		return state.State{}, err
	}
	observe := o.Mode == state.Observe
	held := ds.Annotations[execute.HeldAnnotation]
	switch {
	case observe && held != "":
		return state.State{}, fmt.Errorf("DaemonSet %s/%s is held by admission: a guard policy governs it, not observe", ds.Namespace, ds.Name)
	case !observe && held == "":
		return state.State{}, fmt.Errorf("DaemonSet %s/%s is not held by admission: there is nothing to adopt", ds.Namespace, ds.Name)
	}
	if err := execute.CheckServiceAccount(ds); err != nil {
		return state.State{}, err
	}
	revision, err := execute.TemplateRevision(ds.Spec.Template)
	if err != nil {
		return state.State{}, err
	}
	prev, found, err := state.Decode(ds.Annotations)
	if err != nil {
		return state.State{}, fmt.Errorf("DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	var handOver *state.State
	if found && !prev.Terminal() {
		switch {
		case !prev.Held && !prev.Observing():
			return state.State{}, fmt.Errorf("DaemonSet %s/%s is under rollout %s of bulkhead rollout apply (phase %s); it is that command's", ds.Namespace, ds.Name, prev.ID, prev.Phase)
		case prev.Revision == revision:
			return state.State{}, fmt.Errorf("DaemonSet %s/%s is already under rollout %s of this template (phase %s)", ds.Namespace, ds.Name, prev.ID, prev.Phase)
		case prev.Phase == state.RollingBack:
			return state.State{}, fmt.Errorf("DaemonSet %s/%s: rollout %s is rolling back; the new template waits for it to end", ds.Namespace, ds.Name, prev.ID)
		case prev.Kind == state.Create && !prev.Observing():
			return e.supersede(ctx, ds, prev, revision)
		}
		handOver = &prev
		e.forget(ds.Namespace, ds.Name)
	}

	b, err := e.begin(ctx, ds, o)
	if err != nil {
		return state.State{}, err
	}
	b.start.Mode, b.start.Held, b.start.Revision = o.Mode, !observe, revision
	kind := state.Update
	if held == execute.HeldCreate || (observe && ds.Generation <= 1) {
		kind = state.Create
	}
	b.start.Kind = kind
	if !observe {
		// The live strategy is the hold's OnDelete; the user's is what admission recorded (and
		// End restores the one requested last).
		b.start.OriginalStrategy = defaultStrategy()
		if requested, ok, err := execute.RequestedStrategy(ds); err == nil && ok {
			b.start.OriginalStrategy = requested
		}
	}
	switch {
	case observe:
	case kind == state.Create:
		b.start.NodeLabel = execute.NodeLabelKey(ds.Namespace, ds.Name)
		b.start.BaselineSoak = min(o.Soak, baselineForCreate)
	default:
		hash, err := e.rollbackRevision(ctx, ds, handOver)
		if err != nil {
			return state.State{}, err
		}
		if hash == "" {
			return state.State{}, e.release(ctx, ds, revision)
		}
		b.start.OriginalHash = hash
	}
	st, err := state.New(b.start, time.Now())
	if err != nil {
		return state.State{}, err
	}
	if err := e.ensureLane(ctx, ds, &st, b); err != nil {
		return state.State{}, err
	}
	_, err = execute.Write(ctx, e.Client, ds, handOver, st, func(d *appsv1.DaemonSet) error {
		if err := execute.RequireRevision(d, st); err != nil {
			return err
		}
		if !observe {
			d.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
		}
		if kind == state.Create && !observe {
			d.Spec.Template.Spec = execute.Gate(execute.UserTemplate(d.Spec.Template).Spec, st.NodeLabel)
		}
		if kind == state.Update && !observe {
			// As StartUpdate does: the new pods carry the mark the break-glass identity needs
			// to delete them in a rollback.
			execute.MarkGuarded(&d.Spec.Template)
		}
		return nil
	})
	if err != nil {
		if handOver == nil {
			err = errors.Join(err, e.removeLane(ctx, st.Lane))
		}
		return state.State{}, fmt.Errorf("adopt DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	verb := "adopted"
	if handOver != nil {
		verb = fmt.Sprintf("took over from rollout %s (revision %s, phase %s)", handOver.ID, handOver.Revision, handOver.Phase)
	}
	e.say(ds.Namespace, ds.Name, fmt.Sprintf("rollout %s of %s/%s revision %s (%s, %s): %s", st.ID, ds.Namespace, ds.Name, revision, st.Kind, modeOf(st), verb))
	return st, nil
}

func modeOf(st state.State) state.Mode {
	if st.Observing() {
		return state.Observe
	}
	return state.Guard
}

// supersede starts the rollback of a new DaemonSet's rollout whose template was replaced
// during it: its nodes are unlabelled (the DaemonSet is kept, held), and the new template is
// adopted once that is done, from wave 1.
func (e *Engine) supersede(ctx context.Context, ds *appsv1.DaemonSet, prev state.State, revision string) (state.State, error) {
	reason := fmt.Sprintf("superseded: a new pod template (revision %s) arrived during the rollout of revision %s; rolling this one back so that the new one starts from wave 1", revision, prev.Revision)
	next, err := prev.Abort(reason, time.Now())
	if err != nil {
		return prev, err
	}
	if _, err := execute.SaveState(ctx, e.Client, ds, prev, next); err != nil {
		return prev, err
	}
	e.forget(ds.Namespace, ds.Name)
	e.logf(ds, "%s", reason)
	e.event(ctx, e.Client, ds, false, "Superseded", reason)
	return next, nil
}

// rollbackRevision is the revision an adopted update rolls back to: the one its pods ran before
// the rollout it hands over from began (the fleet's last good revision), or else the revision
// most pods run that is not the current one; "" when every pod runs the current one.
func (e *Engine) rollbackRevision(ctx context.Context, ds *appsv1.DaemonSet, handOver *state.State) (string, error) {
	if handOver != nil && handOver.Kind == state.Update && handOver.OriginalHash != "" && handOver.Phase != state.Finishing {
		return handOver.OriginalHash, nil
	}
	cur, current, err := execute.CurrentRevision(ctx, e.Client, ds.Namespace, ds.Name)
	if err != nil {
		return "", err
	}
	pods, err := execute.Pods(ctx, e.Client, cur)
	if err != nil {
		return "", err
	}
	count := map[string]int{}
	best := ""
	for _, p := range pods {
		rev := p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]
		if rev == current || rev == "" {
			continue
		}
		count[rev]++
		if count[rev] > count[best] || (count[rev] == count[best] && rev < best) {
			best = rev
		}
	}
	return best, nil
}

// release lets a held update go without a rollout when every pod runs its template already:
// nothing would change on any node.
func (e *Engine) release(ctx context.Context, ds *appsv1.DaemonSet, revision string) error {
	return e.Release(ctx, ds, fmt.Sprintf("every pod already runs revision %s: nothing to roll out", revision))
}

// Release lets a DaemonSet admission holds go without a rollout, saying why (it was opted out,
// or nothing would change): its template without the hold's gate, the update strategy
// requested last, the hold's annotations removed. A rollout under way is not touched: release
// refuses a DaemonSet whose template changed since ds was read.
func (e *Engine) Release(ctx context.Context, ds *appsv1.DaemonSet, why string) error {
	revision, err := execute.TemplateRevision(ds.Spec.Template)
	if err != nil {
		return err
	}
	if st, found, err := state.Decode(ds.Annotations); err == nil && found && !st.Terminal() {
		return fmt.Errorf("DaemonSet %s/%s is under rollout %s (phase %s): abort it to stop it", ds.Namespace, ds.Name, st.ID, st.Phase)
	}
	if err := execute.Release(ctx, e.Client, ds, revision); err != nil {
		return err
	}
	msg := why + "; released with the update strategy requested"
	e.logf(ds, "%s", msg)
	e.event(ctx, e.Client, ds, false, "Released", msg)
	return nil
}

// beginning is what a rollout's first state rests on, read before anything is written: the
// eligible nodes and wave targets, the API servers before the rollout, their capacity and the
// limits the budget comes to.
type beginning struct {
	start                state.Start
	perReplica, replicas int
	laneSeats            int
}

func (e *Engine) begin(ctx context.Context, ds *appsv1.DaemonSet, o Options) (beginning, error) {
	waves, err := o.Validate()
	if err != nil {
		return beginning{}, err
	}
	nodes, err := e.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return beginning{}, fmt.Errorf("list nodes: %w", err)
	}
	eligible := len(plan.Eligible(execute.UserTemplate(ds.Spec.Template).Spec, nodes.Items))
	steps, err := plan.Resolve(waves, eligible)
	if err != nil {
		return beginning{}, err
	}
	targets := make([]int, len(steps))
	for i, s := range steps {
		targets[i] = s.Target
	}
	before, err := e.before(ctx)
	if err != nil {
		return beginning{}, err
	}
	b := beginning{replicas: 1, perReplica: o.ServerSeats}
	if measured, n, err := serverSeats(ctx, e.Client, before); err == nil {
		b.replicas = n
		if b.perReplica == 0 {
			b.perReplica = measured
		}
	} else if b.perReplica == 0 {
		return beginning{}, err
	}
	budget := o.budget()
	if b.laneSeats, err = execute.BudgetSeats(b.perReplica, budget[check.Seats]); err != nil {
		return beginning{}, err
	}
	limits := budget.Limits(capacityOf(before, o, b.perReplica, b.replicas))
	lane := execute.LaneNames(ds.Namespace, ds.Name)
	b.start = state.Start{
		ID:        fmt.Sprintf("%s-%04x", time.Now().UTC().Format("20060102-150405"), rand.IntN(1<<16)),
		WavesSpec: o.Waves, Targets: targets, Eligible: eligible, Soak: o.Soak, Budget: budget, Limits: limits,
		Lane: lane, OriginalStrategy: ds.Spec.UpdateStrategy, Before: soak.Baseline(before, lane),
	}
	return b, nil
}

// ensureLane puts the rollout's lane in: sized to the seat budget, or for an observed rollout a
// FlowSchema to the agents' own level (st.Lane says which).
func (e *Engine) ensureLane(ctx context.Context, ds *appsv1.DaemonSet, st *state.State, b beginning) error {
	owner := "daemonset/" + ds.Namespace + "/" + ds.Name
	if st.Observing() {
		lane, err := execute.EnsureObserveLane(ctx, e.Client, st.Lane.FlowSchema, owner, execute.ServiceAccountOf(ds))
		if err != nil {
			return err
		}
		st.Lane = lane
		e.say(ds.Namespace, ds.Name, fmt.Sprintf("rollout %s of %s/%s (observe): %d eligible nodes; the agents' requests are measured in their own level %s, never held",
			st.ID, ds.Namespace, ds.Name, st.Eligible, lane.PriorityLevel))
		e.say(ds.Namespace, ds.Name, "budget: "+describeLimits(st.Limits))
		return nil
	}
	seats, err := execute.EnsureLane(ctx, e.Client, st.Lane, owner, execute.ServiceAccountOf(ds), b.perReplica, b.laneSeats)
	if err != nil {
		return err
	}
	e.say(ds.Namespace, ds.Name, fmt.Sprintf("rollout %s of %s/%s (%s): %d eligible nodes, waves %v; lane %s holds %d of %d seats per API server (%d replicas)",
		st.ID, ds.Namespace, ds.Name, st.Kind, st.Eligible, st.Targets, st.Lane.PriorityLevel, seats, b.perReplica, b.replicas))
	e.say(ds.Namespace, ds.Name, "budget: "+describeLimits(st.Limits))
	return nil
}

// removeLane undoes ensureLane after a start that failed.
func (e *Engine) removeLane(ctx context.Context, lane state.Lane) error {
	if err := execute.DeleteLane(context.WithoutCancel(ctx), e.Client, lane); err != nil {
		return fmt.Errorf("remove the lane again: %w", err)
	}
	return nil
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
	// A meter that stopped while no rollout needed it keeps its old readings: only a recent one
	// tells what the servers do now.
	recent := time.Now().Add(-2 * e.Meter.Every())
	var r controlplane.Reading
	for attempt := 0; attempt < 3; attempt++ {
		if readings := e.Meter.Since(recent); len(readings) > 0 {
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
