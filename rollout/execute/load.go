package execute

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

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
