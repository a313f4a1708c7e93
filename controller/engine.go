package controller

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/bulkhead-dev/bulkhead/controller/api/v1alpha1"
	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// Engine is the rollout core as the controller drives it: one bounded step at a time
// (observe → decide → act → save), the state on the DaemonSet. rollout.Engine implements it
// through a small adapter that turns Settings into rollout.Options.
type Engine interface {
	// Adopt starts a rollout of a DaemonSet admission holds (or, in observe mode, one the
	// DaemonSet controller is rolling out by itself): the lane and the state.
	Adopt(ctx context.Context, ds *appsv1.DaemonSet, s v1alpha1.Settings) (state.State, error)
	// Step does the next bounded piece of a rollout and says when to come back.
	Step(ctx context.Context, namespace, name string) (StepResult, error)
}

// StepResult is what one step did.
type StepResult struct {
	State state.State
	// Decision is set when the step judged a soak.
	Decision *analyze.Decision
	// RequeueAfter is when to step again; 0 means nothing to do until something changes.
	RequeueAfter time.Duration
}
