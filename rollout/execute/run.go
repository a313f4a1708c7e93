package execute

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// Watcher soaks the current wave and returns the decision (soak.Soaker is the real one).
type Watcher interface {
	Watch(ctx context.Context, ds *appsv1.DaemonSet, st state.State) (analyze.Decision, state.WaveRecord, error)
}

// Runner drives a rollout from its persisted state: it reads the state, does the action it
// calls for, saves the next state, and repeats. Nothing but the annotation carries over from
// one action to the next, so a new Runner in a new process continues where a dead one stopped.
type Runner struct {
	Client  kubernetes.Interface
	Watcher Watcher
	// Log receives one line per step; Decisions every wave's final decision.
	Log       func(string)
	Decisions func(analyze.Decision)
	// RollbackClient, when set, is asked for the client each rollback runs with, when the
	// rollback begins (rollout.BreakGlassRollback: the break-glass lane when installed); nil
	// means Client.
	RollbackClient func(ctx context.Context) kubernetes.Interface
}

// Run works until the rollout is over, paused, or ctx ends, and returns the last state.
func (r *Runner) Run(ctx context.Context, namespace, name string) (state.State, error) {
	for {
		ds, st, err := Load(ctx, r.Client, namespace, name)
		if err != nil {
			return state.State{}, err
		}
		action := st.NextAction()
		if action == state.None || action == state.Wait {
			return st, nil
		}
		// A rollback must get through when the API servers struggle: its requests, and the
		// state it saves, travel the rollback client's lane.
		client := r.Client
		if action == state.Rollback && r.RollbackClient != nil {
			client = r.RollbackClient(ctx)
		}
		next, err := r.do(ctx, client, ds, st, action)
		if errors.Is(err, ErrStateChanged) {
			r.logf("the rollout was changed by another command; re-reading it")
			continue
		}
		if err != nil {
			return st, fmt.Errorf("rollout %s of %s/%s, %s: %w", st.ID, namespace, name, action, err)
		}
		if st.Kind == state.Create && next.Phase == state.RolledBack {
			r.logf("rolled back: DaemonSet %s/%s deleted (%s)", namespace, name, st.Reason)
			return next, nil // the DaemonSet, and its annotation, are gone
		}
		if _, err := SaveState(ctx, client, ds, st, next); errors.Is(err, ErrStateChanged) {
			// A pause or abort landed while the action ran: the action is idempotent, so
			// dropping its transition is safe; the new state decides what happens next.
			r.logf("the rollout was changed by another command; re-reading it")
			continue
		} else if err != nil {
			return st, err
		}
	}
}

func (r *Runner) do(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, st state.State, action state.Action) (state.State, error) {
	switch action {
	case state.RollWave:
		done, err := RollWave(ctx, client, ds, st)
		if err != nil {
			return st, err
		}
		r.logf("wave %d: %d of %d nodes switched", st.Wave, done, st.Eligible)
		r.event(ctx, client, ds, false, "WaveStarted", fmt.Sprintf("wave %d: %d of %d nodes switched", st.Wave, done, st.Eligible))
		return st.WaveRolled(done, time.Now())
	case state.Soak:
		d, rec, err := r.watch(ctx, ds, st)
		if err != nil {
			return st, err
		}
		r.logf("%s", d.Headline)
		r.event(ctx, client, ds, d.Verdict == analyze.Halt, "Wave"+strings.ToUpper(string(d.Verdict[:1]))+string(d.Verdict[1:]), d.Headline)
		if r.Decisions != nil {
			r.Decisions(d)
		}
		return st.Decided(d.Verdict, rec, strings.Join(d.Reasons, "; "), time.Now())
	case state.Finish:
		if err := Finish(ctx, client, ds, st); err != nil {
			return st, err
		}
		r.logf("complete: %d nodes run the new pods; update strategy restored, lane removed", st.Eligible)
		r.event(ctx, client, ds, false, "RolloutComplete", fmt.Sprintf("rollout %s complete on %d nodes", st.ID, st.Eligible))
		return st.Finished(time.Now())
	case state.Rollback:
		r.logf("rolling back: %s", st.Reason)
		r.event(ctx, client, ds, true, "RollingBack", st.Reason)
		if err := Rollback(ctx, client, ds, st); err != nil {
			return st, err
		}
		return st.RolledBackAt(time.Now())
	}
	return st, fmt.Errorf("no step for action %q", action)
}

// watch soaks, and stops early when another command changes the rollout's state (a pause or
// an abort must not wait for the soak to end): it reads the DaemonSet every few seconds.
func (r *Runner) watch(ctx context.Context, ds *appsv1.DaemonSet, st state.State) (analyze.Decision, state.WaveRecord, error) {
	soakCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		ticker := time.NewTicker(stateCheckInterval)
		defer ticker.Stop()
		for {
			select {
			case <-soakCtx.Done():
				return
			case <-ticker.C:
			}
			if _, now, err := Load(soakCtx, r.Client, ds.Namespace, ds.Name); err == nil && !sameState(now, st) {
				cancel(ErrStateChanged)
				return
			}
		}
	}()
	d, rec, err := r.Watcher.Watch(soakCtx, ds, st)
	if err != nil && errors.Is(context.Cause(soakCtx), ErrStateChanged) {
		return d, rec, ErrStateChanged
	}
	return d, rec, err
}

// stateCheckInterval is how often a soak looks for a pause or an abort.
const stateCheckInterval = 2 * time.Second

func (r *Runner) event(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, warning bool, reason, message string) {
	if err := Event(ctx, client, ds, warning, reason, message); err != nil {
		r.logf("%v", err)
	}
}

func (r *Runner) logf(format string, args ...any) {
	if r.Log != nil {
		r.Log(fmt.Sprintf(format, args...))
	}
}

// Load reads a DaemonSet and its rollout state; a DaemonSet never rolled out by bulkhead is an
// error that says so.
func Load(ctx context.Context, client kubernetes.Interface, namespace, name string) (*appsv1.DaemonSet, state.State, error) {
	ds, err := client.AppsV1().DaemonSets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, state.State{}, fmt.Errorf("DaemonSet %s/%s: %w", namespace, name, err)
	}
	st, found, err := state.Decode(ds.Annotations)
	if err != nil {
		return nil, state.State{}, fmt.Errorf("DaemonSet %s/%s: %w", namespace, name, err)
	}
	if !found {
		return nil, state.State{}, fmt.Errorf("DaemonSet %s/%s has no bulkhead rollout", namespace, name)
	}
	return ds, st, nil
}

// Transition applies a user's command (pause, resume, abort) to the persisted state.
func Transition(ctx context.Context, client kubernetes.Interface, namespace, name string, change func(state.State) (state.State, error)) (state.State, error) {
	ds, st, err := Load(ctx, client, namespace, name)
	if err != nil {
		return state.State{}, err
	}
	next, err := change(st)
	if err != nil {
		return st, fmt.Errorf("DaemonSet %s/%s: %w", namespace, name, err)
	}
	if _, err := SaveState(ctx, client, ds, st, next); err != nil {
		return st, err
	}
	return next, nil
}
