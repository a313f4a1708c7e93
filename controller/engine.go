package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/bulkhead-dev/bulkhead/controller/api/v1alpha1"
	"github.com/bulkhead-dev/bulkhead/rollout"
	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/plan"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// Engine is the rollout core as the controller drives it: one bounded step at a time
// (observe → decide → act → save), the state on the DaemonSet. RolloutEngine is the real one.
type Engine interface {
	// Adopt starts a rollout of a DaemonSet admission holds (or, in observe mode, one the
	// DaemonSet controller is rolling out by itself), superseding one of an earlier template.
	// An empty state means nothing needed rolling out (the hold was released).
	Adopt(ctx context.Context, ds *appsv1.DaemonSet, s v1alpha1.Settings) (state.State, error)
	// Step does the next bounded piece of a rollout and says when to come back.
	Step(ctx context.Context, namespace, name string) (StepResult, error)
	// Release lets a held DaemonSet with no rollout under way go unguarded, saying why.
	Release(ctx context.Context, ds *appsv1.DaemonSet, why string) error
}

// StepResult is what one step did.
type StepResult struct {
	State state.State
	// Decision is set when the step judged a soak.
	Decision *analyze.Decision
	// RequeueAfter is when to step again; 0 means nothing to do until something changes.
	RequeueAfter time.Duration
	// Superseded: the DaemonSet's template is not the rollout's any more; adopt it.
	Superseded bool
}

// meterIdle is how long the meter keeps scraping the API servers after the last step that
// needed it: a controller with no rollout under way reads no /metrics.
const meterIdle = 2 * time.Minute

// RolloutEngine drives rollout.Engine for the controller: a policy's Settings become
// rollout.Options with the product's defaults for what it leaves out, and the engine's meter
// scrapes the API servers only while rollouts need it (from the first step until meterIdle
// after the last).
type RolloutEngine struct {
	Engine *rollout.Engine

	mu       sync.Mutex
	stop     context.CancelFunc
	lastUsed time.Time
}

// Options turns a policy's settings into the rollout core's options; what the policy leaves
// out takes the product's defaults.
func Options(s v1alpha1.Settings) (rollout.Options, error) {
	o := rollout.Options{Waves: s.Waves, Soak: s.Soak, Mode: state.Guard}
	if s.Mode == v1alpha1.Observe {
		o.Mode = state.Observe
	}
	if o.Waves == "" {
		o.Waves = plan.DefaultWaves
	}
	if o.Soak == 0 {
		o.Soak = rollout.DefaultSoak
	}
	budget, err := check.ParseBudget(s.Budget)
	if err != nil {
		return rollout.Options{}, err
	}
	o.Budget = budget
	if _, err := o.Validate(); err != nil {
		return rollout.Options{}, err
	}
	return o, nil
}

// Adopt implements Engine.
func (r *RolloutEngine) Adopt(ctx context.Context, ds *appsv1.DaemonSet, s v1alpha1.Settings) (state.State, error) {
	o, err := Options(s)
	if err != nil {
		return state.State{}, fmt.Errorf("settings: %w", err)
	}
	r.measuring()
	return r.Engine.Adopt(ctx, ds, o)
}

// Step implements Engine.
func (r *RolloutEngine) Step(ctx context.Context, namespace, name string) (StepResult, error) {
	r.measuring()
	res, err := r.Engine.Step(ctx, namespace, name)
	return StepResult{State: res.State, Decision: res.Decision, RequeueAfter: res.RequeueAfter, Superseded: res.Superseded}, err
}

// Release implements Engine.
func (r *RolloutEngine) Release(ctx context.Context, ds *appsv1.DaemonSet, why string) error {
	return r.Engine.Release(ctx, ds, why)
}

// measuring starts the meter when it is not running and notes that a rollout needs it.
func (r *RolloutEngine) measuring() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastUsed = time.Now()
	if r.stop != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go r.Engine.Meter.Run(ctx)
	go r.idle(ctx)
}

// idle stops the meter once no step has needed it for meterIdle.
func (r *RolloutEngine) idle(ctx context.Context) {
	t := time.NewTicker(meterIdle / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		if time.Since(r.lastUsed) >= meterIdle {
			r.stop()
			r.stop = nil
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}

// Close stops the meter and the engine's pod caches.
func (r *RolloutEngine) Close() {
	r.mu.Lock()
	if r.stop != nil {
		r.stop()
		r.stop = nil
	}
	r.mu.Unlock()
	r.Engine.Close()
}
