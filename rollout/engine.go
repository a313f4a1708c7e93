package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/bulkhead-dev/bulkhead/apf"
	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/execute"
	"github.com/bulkhead-dev/bulkhead/rollout/soak"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// Engine runs guarded rollouts one bounded step at a time: observe → decide → act → save. A step
// reads the rollout's state from its DaemonSet, does the one action the state calls for (switch
// a wave's nodes, judge its soak with what the meter measured since the last step, finish, roll
// back), saves the next state with a compare-and-swap, and says when to come back. Nothing but
// the annotation carries over between steps that matters for correctness: a step in a new
// process continues where a dead one stopped, and a soak whose samples died with their process
// starts again. The CLI drives one rollout in a loop; the controller drives many from its work
// queue, all sharing one Meter.
type Engine struct {
	Client kubernetes.Interface
	// Meter scrapes the API servers for every rollout; it must be running (Meter.Run).
	Meter *soak.Meter
	// Timing and Guards tune the decisions; zero fields take the defaults.
	Timing check.Timing
	Guards check.Guards
	// Log receives progress lines of a rollout; Decisions every decision, holds included.
	Log       func(namespace, name, line string)
	Decisions func(namespace, name string, d analyze.Decision)
	// Rollback, when set, gives the client a rollback runs with (BreakGlassRollback); nil rolls
	// back with Client.
	Rollback func(context.Context) kubernetes.Interface

	mu      sync.Mutex
	soaks   map[string]*soaking
	batches map[string]batch
}

// soaking is what the engine keeps in memory for one rollout while it soaks: the soak's
// intervals, a cache of the DaemonSet's pods and the revision new pods get.
type soaking struct {
	tracker  *soak.Tracker
	pods     *soak.Pods
	revision string
	holds    holdReporter
}

// batch is the nodes a rollout switched last in its current wave, while their agents start.
type batch struct {
	key   string
	nodes []string
}

// Result is what one step did.
type Result struct {
	State state.State
	// Decision is set when the step judged a soak (holds included).
	Decision *analyze.Decision
	// RequeueAfter is when to step again; Done says nothing is left to do until something
	// changes (the rollout is over or paused).
	RequeueAfter time.Duration
	Done         bool
	// Superseded says the step did nothing because the DaemonSet's template is no longer the
	// one the rollout rolls out (a held DaemonSet got a new one): Adopt it.
	Superseded bool
}

// Step does the next bounded piece of the rollout of namespace/name.
func (e *Engine) Step(ctx context.Context, namespace, name string) (Result, error) {
	ds, st, err := execute.Load(ctx, e.Client, namespace, name)
	if err != nil {
		return Result{}, err
	}
	action := st.NextAction()
	if (st.Held || st.Observing()) && action != state.None && action != state.Rollback {
		// A template that arrived during the rollout is never acted on as if it were the one
		// measured: the controller adopts it (Adopt supersedes this rollout).
		if err := execute.RequireRevision(ds, st); errors.Is(err, execute.ErrSuperseded) {
			e.forget(namespace, name)
			return Result{State: st, Done: true, Superseded: true}, nil
		} else if err != nil {
			return Result{State: st}, err
		}
	}
	if action != state.Soak {
		e.forget(namespace, name)
	}
	switch action {
	case state.None, state.Wait:
		e.mu.Lock()
		delete(e.batches, namespace+"/"+name)
		e.mu.Unlock()
		return Result{State: st, Done: true}, nil
	case state.Soak:
		return e.soak(ctx, ds, st)
	}
	if action == state.RollWave {
		return e.rollWave(ctx, ds, st)
	}
	client := e.Client
	if action == state.Rollback && e.Rollback != nil {
		// A rollback must get through when the API servers struggle: its requests, and the
		// state it saves, travel the rollback client's lane.
		client = e.Rollback(ctx)
	}
	next, err := e.act(ctx, client, ds, st, action)
	if err != nil {
		return Result{State: st}, fmt.Errorf("rollout %s of %s/%s, %s: %w", st.ID, namespace, name, action, err)
	}
	if st.Kind == state.Create && !st.Held && next.Phase == state.RolledBack {
		e.logf(ds, "rolled back: DaemonSet %s/%s deleted (%s)", namespace, name, st.Reason)
		return Result{State: next, Done: true}, nil // the DaemonSet, and its annotation, are gone
	}
	// The last write restores the update strategy with the final state (and releases a
	// DaemonSet admission held): never one without the other.
	if _, err := execute.End(ctx, client, ds, st, next); err != nil {
		return Result{State: st}, err
	}
	return Result{State: next, Done: next.NextAction() == state.None}, nil
}

func (e *Engine) act(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, st state.State, action state.Action) (state.State, error) {
	switch action {
	case state.Finish:
		if err := execute.Finish(ctx, client, ds, st); err != nil {
			return st, err
		}
		msg := fmt.Sprintf("rollout %s complete on %d nodes", st.ID, st.Eligible)
		switch {
		case st.Observing() && st.WouldHalt != nil:
			msg = fmt.Sprintf("observed rollout %s: the DaemonSet controller rolled out %d nodes; guard would have halted it: %s", st.ID, st.Done, st.WouldHalt.Headline)
		case st.Observing():
			msg = fmt.Sprintf("observed rollout %s: the DaemonSet controller rolled out %d nodes within the budget", st.ID, st.Done)
		default:
			e.logf(ds, "complete: %d nodes run the new pods; update strategy restored, lane removed", st.Eligible)
		}
		e.event(ctx, client, ds, false, "RolloutComplete", msg)
		return st.Finished(time.Now())
	case state.Rollback:
		e.logf(ds, "rolling back: %s", st.Reason)
		e.event(ctx, client, ds, true, "RollingBack", st.Reason)
		// Relief first: the lane is squeezed before anything else. Then the record that keeps
		// the halted template halted, written with the engine's own client (the break-glass
		// identity may not write PodTemplates) before the template is replaced.
		record := func(ctx context.Context) error { return execute.RecordHalted(ctx, e.Client, ds, st) }
		if err := execute.Rollback(ctx, client, ds, st, record); err != nil {
			return st, err
		}
		return st.RolledBackAt(time.Now())
	}
	return st, fmt.Errorf("no step for action %q", action)
}

// rollWave switches the next batch of the current wave's nodes once the last batch's agents are
// Ready and settled, and moves the rollout to its soak when the wave's target is reached.
// Progress lives in the cluster (node labels, pod revisions), so only that transition is saved.
func (e *Engine) rollWave(ctx context.Context, ds *appsv1.DaemonSet, st state.State) (Result, error) {
	if st.Observing() {
		return e.awaitDaemonSetController(ctx, ds, st)
	}
	key, waveKey := ds.Namespace+"/"+ds.Name, fmt.Sprintf("%s/%d", st.ID, st.Wave)
	e.mu.Lock()
	pending := e.batches[key]
	e.mu.Unlock()
	if pending.key != waveKey {
		pending = batch{}
	}
	p, err := execute.RollWave(ctx, e.Client, ds, st, pending.nodes)
	if len(p.Switched) > 0 {
		e.mu.Lock()
		if e.batches == nil {
			e.batches = map[string]batch{}
		}
		e.batches[key] = batch{key: waveKey, nodes: p.Switched}
		e.mu.Unlock()
	}
	if err != nil {
		return Result{State: st}, fmt.Errorf("rollout %s of %s/%s, %s: %w", st.ID, ds.Namespace, ds.Name, state.RollWave, err)
	}
	if len(p.Switched) > 0 {
		msg := fmt.Sprintf("wave %d: %d of %d nodes switched", st.Wave, p.Done, st.Eligible)
		if !p.Complete {
			msg += fmt.Sprintf(" (a batch of %d; the next once their agents are Ready and settled)", len(p.Switched))
		}
		e.logf(ds, "%s", msg)
		e.event(ctx, e.Client, ds, false, "WaveStarted", msg)
	}
	if !p.Complete {
		return Result{State: st, RequeueAfter: p.Wait}, nil
	}
	next, err := st.WaveRolled(p.Done, time.Now())
	if err != nil {
		return Result{State: st}, err
	}
	if _, err := execute.SaveState(ctx, e.Client, ds, st, next); err != nil {
		return Result{State: st}, err
	}
	return Result{State: next}, nil
}

// awaitDaemonSetController is an observed rollout's wave: nothing is switched; the step comes
// back until the DaemonSet controller has rolled every node and the agents settled, then the
// soak measures the whole fleet.
func (e *Engine) awaitDaemonSetController(ctx context.Context, ds *appsv1.DaemonSet, st state.State) (Result, error) {
	p, err := execute.AwaitDaemonSetController(ctx, e.Client, ds)
	if err != nil {
		return Result{State: st}, fmt.Errorf("rollout %s of %s/%s, observe: %w", st.ID, ds.Namespace, ds.Name, err)
	}
	if !p.Complete {
		return Result{State: st, RequeueAfter: max(p.Wait, time.Second)}, nil
	}
	next, err := st.Observed(p.Done, time.Now())
	if err != nil {
		return Result{State: st}, err
	}
	e.logf(ds, "observe: the DaemonSet controller rolled out %d agents and they settled; measuring them for %v", p.Done, st.Soak.Duration)
	if _, err := execute.SaveState(ctx, e.Client, ds, st, next); err != nil {
		return Result{State: st}, err
	}
	return Result{State: next}, nil
}

// soak judges the current soak with what the meter measured since it began. A hold comes back
// after one scrape interval; a decision moves the rollout on.
func (e *Engine) soak(ctx context.Context, ds *appsv1.DaemonSet, st state.State) (Result, error) {
	now := time.Now()
	if !e.Meter.Covers(st.SoakStarted) {
		// The soak began before this process measured anything: its samples are lost.
		next, err := st.RestartSoak(now)
		if err != nil {
			return Result{State: st}, err
		}
		e.logf(ds, "wave %d: no measurement of this soak survives (a new process took the rollout over); soaking again from now", st.Wave)
		if _, err := execute.SaveState(ctx, e.Client, ds, st, next); err != nil {
			return Result{State: st}, err
		}
		return Result{State: next}, nil
	}
	s, err := e.soakingOf(ctx, ds, st)
	if err != nil {
		return Result{State: st}, err
	}
	s.tracker.Observe(e.Meter, st.Lane)
	agents, err := s.pods.Agents(s.revision, st)
	if err != nil {
		return Result{State: st}, err
	}
	obs := s.tracker.Observations(st, agents, e.Meter.Latest(), soak.BeforeReading(st.Before), now, apf.CompartmentName(ds.Namespace, ds.Name))
	obs.Wave.Timing, obs.Guards = e.Timing, e.Guards
	d := analyze.Analyze(obs)
	if e.Decisions != nil {
		e.Decisions(ds.Namespace, ds.Name, d)
	}
	if d.Verdict == analyze.Hold {
		if s.holds.report(d, now) {
			e.logf(ds, "%s", d.Headline)
		}
		return Result{State: st, Decision: &d, RequeueAfter: e.Meter.Every()}, nil
	}
	rec := soak.Record(d, agents, now)
	rec.ReadyAt = s.tracker.ReadyAt()
	next := st
	if st.Phase == state.Baseline && d.Verdict == analyze.Proceed {
		ref := soak.ReferenceOf(s.tracker.Intervals(), d)
		if next, err = next.Baselined(ref, soak.WithUse(st.Limits, s.tracker.Intervals(), ref), now); err != nil {
			return Result{State: st}, err
		}
	}
	if next, err = next.Decided(d.Verdict, rec, strings.Join(d.Reasons, "; "), now); err != nil {
		return Result{State: st}, err
	}
	e.logf(ds, "%s", d.Headline)
	for _, line := range d.Summary() {
		e.logf(ds, "%s", line)
	}
	for _, note := range d.Notes {
		e.logf(ds, "  note: %s", note)
	}
	reason := "Wave" + strings.ToUpper(string(d.Verdict[:1])) + string(d.Verdict[1:])
	if st.Observing() && d.Verdict == analyze.Halt {
		reason = "WouldHalt" // observe never acts on it
	}
	e.event(ctx, e.Client, ds, d.Verdict == analyze.Halt, reason, d.Headline)
	if _, err := execute.SaveState(ctx, e.Client, ds, st, next); err != nil {
		return Result{State: st, Decision: &d}, err
	}
	e.forget(ds.Namespace, ds.Name)
	return Result{State: next, Decision: &d}, nil
}

// soakingOf is the rollout's soak in memory, started (pod cache, tracker, revision) when the
// soak is new to this process.
func (e *Engine) soakingOf(ctx context.Context, ds *appsv1.DaemonSet, st state.State) (*soaking, error) {
	key := ds.Namespace + "/" + ds.Name
	e.mu.Lock()
	s := e.soaks[key]
	e.mu.Unlock()
	if s != nil && s.tracker.Key() == soak.SoakKey(st) {
		return s, nil
	}
	e.forget(ds.Namespace, ds.Name)
	cur, revision, err := execute.CurrentRevision(ctx, e.Client, ds.Namespace, ds.Name)
	if err != nil {
		return nil, err
	}
	pods, err := soak.WatchPods(ctx, e.Client, cur)
	if err != nil {
		return nil, err
	}
	s = &soaking{tracker: soak.NewTracker(st, e.Meter), pods: pods, revision: revision}
	e.mu.Lock()
	if e.soaks == nil {
		e.soaks = map[string]*soaking{}
	}
	e.soaks[key] = s
	e.mu.Unlock()
	return s, nil
}

// forget drops a rollout's soak from memory.
func (e *Engine) forget(namespace, name string) {
	key := namespace + "/" + name
	e.mu.Lock()
	s := e.soaks[key]
	delete(e.soaks, key)
	e.mu.Unlock()
	if s != nil {
		s.pods.Stop()
	}
}

// Close stops every pod cache the engine holds.
func (e *Engine) Close() {
	e.mu.Lock()
	keys := make([]string, 0, len(e.soaks))
	for k := range e.soaks {
		keys = append(keys, k)
	}
	e.mu.Unlock()
	for _, k := range keys {
		ns, name, _ := strings.Cut(k, "/")
		e.forget(ns, name)
	}
}

// Run steps the rollout of namespace/name until it is over, paused, or ctx ends, and returns
// its last state: the CLI's loop. A change of the state by another command between a step's
// read and its save only makes the next step re-read it.
func (e *Engine) Run(ctx context.Context, namespace, name string) (state.State, error) {
	defer e.forget(namespace, name)
	for {
		r, err := e.Step(ctx, namespace, name)
		switch {
		case errors.Is(err, execute.ErrStateChanged):
			e.say(namespace, name, "the rollout was changed by another command; re-reading it")
			continue
		case err != nil:
			return r.State, err
		case r.Done:
			return r.State, nil
		}
		if r.RequeueAfter <= 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return r.State, ctx.Err()
		case <-time.After(r.RequeueAfter):
		}
	}
}

func (e *Engine) event(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, warning bool, reason, message string) {
	if err := execute.Event(ctx, client, ds, warning, reason, message); err != nil {
		e.logf(ds, "%v", err)
	}
}

func (e *Engine) logf(ds *appsv1.DaemonSet, format string, args ...any) {
	e.say(ds.Namespace, ds.Name, fmt.Sprintf(format, args...))
}

func (e *Engine) say(namespace, name, line string) {
	if e.Log != nil {
		e.Log(namespace, name, line)
	}
}
