package execute

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// pollInterval paces the short waits for the DaemonSet controller (a handful of reads of one
// object or one DaemonSet's pods, never a cluster-wide list).
const pollInterval = 500 * time.Millisecond

var onDelete = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}

// CheckFree refuses to start a rollout of a DaemonSet that is under one already.
func CheckFree(ds *appsv1.DaemonSet) error {
	st, found, err := state.Decode(ds.Annotations)
	if err != nil {
		return fmt.Errorf("DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	if found && !st.Terminal() {
		return fmt.Errorf("DaemonSet %s/%s is already under rollout %s (phase %s, wave %d); use status, resume or abort",
			ds.Namespace, ds.Name, st.ID, st.Phase, st.Wave)
	}
	return nil
}

// StartCreate creates a new DaemonSet gated to labelled nodes, with OnDelete and the
// rollout's state, in one create: either all of it exists or none.
func StartCreate(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, st state.State) (*appsv1.DaemonSet, error) {
	gated := ds.DeepCopy()
	gated.Spec.Template.Spec = Gate(ds.Spec.Template.Spec, st.NodeLabel)
	gated.Spec.UpdateStrategy = onDelete
	if err := setState(gated, st); err != nil {
		return nil, err
	}
	out, err := client.AppsV1().DaemonSets(ds.Namespace).Create(ctx, gated, metav1.CreateOptions{FieldManager: fieldManager})
	if err != nil {
		return nil, fmt.Errorf("create DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	return out, nil
}

// GuardedPodAnnotation marks the template an update rollout gives a DaemonSet, and so every
// pod it makes: the break-glass identity may delete those pods in a rollback, and no others (the
// API server's admission policy checks the pod itself, which is all it can see). The value is
// fixed, so rolling out the same template again changes nothing.
const GuardedPodAnnotation = "rollout.bulkhead.dev/guarded"

// ServerTemplate is ds's pod template as the API server would store it — defaulted and
// mutated by admission — from a dry run of the write that would start its rollout (current is
// nil for a new DaemonSet). A revision is only comparable across reads when it names the
// stored template: a manifest's lacks every default.
func ServerTemplate(ctx context.Context, client kubernetes.Interface, current, ds *appsv1.DaemonSet) (corev1.PodTemplateSpec, error) {
	dryRun := []string{metav1.DryRunAll}
	if current == nil {
		out, err := client.AppsV1().DaemonSets(ds.Namespace).Create(ctx, ds, metav1.CreateOptions{DryRun: dryRun, FieldManager: fieldManager})
		if err != nil {
			return corev1.PodTemplateSpec{}, fmt.Errorf("dry-run create of DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
		}
		return out.Spec.Template, nil
	}
	next := current.DeepCopy()
	next.Spec.Template = ds.Spec.Template
	out, err := client.AppsV1().DaemonSets(current.Namespace).Update(ctx, next, metav1.UpdateOptions{DryRun: dryRun, FieldManager: fieldManager})
	if err != nil {
		return corev1.PodTemplateSpec{}, fmt.Errorf("dry-run update of DaemonSet %s/%s: %w", current.Namespace, current.Name, err)
	}
	return out.Spec.Template, nil
}

// MarkGuarded marks a template with GuardedPodAnnotation.
func MarkGuarded(t *corev1.PodTemplateSpec) {
	if t.Annotations == nil {
		t.Annotations = map[string]string{}
	}
	t.Annotations[GuardedPodAnnotation] = "true"
}

// StartUpdate switches an existing DaemonSet to OnDelete, gives it the new template (marked
// with GuardedPodAnnotation) and records the rollout's state, in one update guarded by the
// resourceVersion read: the controller restarts no pod by itself from here on.
func StartUpdate(ctx context.Context, client kubernetes.Interface, current *appsv1.DaemonSet, template corev1.PodTemplateSpec, st state.State) (*appsv1.DaemonSet, error) {
	next := current.DeepCopy()
	next.Spec.Template = *template.DeepCopy()
	MarkGuarded(&next.Spec.Template)
	next.Spec.UpdateStrategy = onDelete
	if err := setState(next, st); err != nil {
		return nil, err
	}
	out, err := client.AppsV1().DaemonSets(current.Namespace).Update(ctx, next, metav1.UpdateOptions{FieldManager: fieldManager})
	if err != nil {
		return nil, fmt.Errorf("start the update of DaemonSet %s/%s: %w", current.Namespace, current.Name, err)
	}
	return out, nil
}

// ErrStateChanged means another command (pause, abort, a second bulkhead) moved the rollout on
// since this process read it.
var ErrStateChanged = errors.New("the rollout state changed under us")

// ErrSuperseded means the DaemonSet's pod template is no longer the one the rollout rolls out:
// a new one arrived (admission kept it held). The rollout must not act on a template it did
// not measure.
var ErrSuperseded = errors.New("a new pod template superseded the one rolled out")

func sameState(a, b state.State) bool {
	return a.ID == b.ID && a.Phase == b.Phase && a.Paused == b.Paused && a.Updated.Equal(b.Updated)
}

// SaveState replaces the rollout state prev with next on the DaemonSet: a compare-and-swap on
// the state itself. It fails, changing nothing, when the DaemonSet's state is no longer prev
// (another bulkhead, or a human, moved the rollout on); status updates by the controller do not
// count as a change.
func SaveState(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, prev, next state.State) (*appsv1.DaemonSet, error) {
	return Write(ctx, client, ds, &prev, next, nil)
}

// Write saves next in place of prev — nil when no rollout may be under way (no state, or a
// terminal one) — and, in the same update, makes change to the DaemonSet (nil: none): a
// rollout's first write, or its last one (the update strategy restored with its final state),
// is all or nothing. It is a compare-and-swap on the state and on the object's
// resourceVersion: a conflict re-reads and retries, a state that moved on fails with
// ErrStateChanged and changes nothing. change may refuse (ErrSuperseded, for one).
func Write(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, prev *state.State, next state.State, change func(*appsv1.DaemonSet) error) (*appsv1.DaemonSet, error) {
	ann, err := state.Encode(next)
	if err != nil {
		return nil, err
	}
	var out *appsv1.DaemonSet
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := client.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		have, found, err := state.Decode(cur.Annotations)
		if err != nil {
			return err
		}
		switch {
		case prev == nil && found && !have.Terminal():
			return fmt.Errorf("%w: rollout %s is under way (phase %s)", ErrStateChanged, have.ID, have.Phase)
		case prev != nil && (!found || !sameState(have, *prev)):
			return fmt.Errorf("%w (now %s, phase %s, updated %s)", ErrStateChanged, have.ID, have.Phase, have.Updated.Format(time.RFC3339))
		}
		if change == nil {
			// The resourceVersion makes the patch fail with a conflict, and retry, if anything
			// changed since the read above.
			patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
				"resourceVersion": cur.ResourceVersion, "annotations": ann}})
			if err != nil {
				return fmt.Errorf("encode state patch: %w", err)
			}
			out, err = client.AppsV1().DaemonSets(ds.Namespace).Patch(ctx, ds.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
			return err
		}
		next := cur.DeepCopy()
		if err := change(next); err != nil {
			return err
		}
		if next.Annotations == nil {
			next.Annotations = map[string]string{}
		}
		maps.Copy(next.Annotations, ann)
		out, err = client.AppsV1().DaemonSets(ds.Namespace).Update(ctx, next, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("save rollout state on DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	return out, nil
}

// RequireRevision refuses, with ErrSuperseded, a DaemonSet whose template is not the one st
// rolls out. States written before bulkhead recorded revisions pass.
func RequireRevision(ds *appsv1.DaemonSet, st state.State) error {
	if st.Revision == "" {
		return nil
	}
	rev, err := TemplateRevision(ds.Spec.Template)
	if err != nil {
		return err
	}
	if rev != st.Revision {
		return fmt.Errorf("DaemonSet %s/%s: %w (revision %s arrived; rollout %s rolls out %s)", ds.Namespace, ds.Name, ErrSuperseded, rev, st.ID, st.Revision)
	}
	return nil
}

func setState(ds *appsv1.DaemonSet, st state.State) error {
	ann, err := state.Encode(st)
	if err != nil {
		return err
	}
	if ds.Annotations == nil {
		ds.Annotations = map[string]string{}
	}
	for k, v := range ann {
		ds.Annotations[k] = v
	}
	return nil
}

// fieldManager names bulkhead's writes in managedFields.
const fieldManager = "bulkhead"

// CurrentRevision waits until the DaemonSet controller has seen the DaemonSet's latest
// generation, then returns the hash of its newest ControllerRevision: the revision new pods get.
func CurrentRevision(ctx context.Context, client kubernetes.Interface, namespace, name string) (*appsv1.DaemonSet, string, error) {
	var ds *appsv1.DaemonSet
	err := wait.PollUntilContextTimeout(ctx, pollInterval, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		var err error
		ds, err = client.AppsV1().DaemonSets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return ds.Status.ObservedGeneration >= ds.Generation, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("wait for the DaemonSet controller to observe %s/%s: %w", namespace, name, err)
	}
	revisions, err := ownedRevisions(ctx, client, ds)
	if err != nil {
		return nil, "", err
	}
	var newest *appsv1.ControllerRevision
	for i := range revisions {
		if newest == nil || revisions[i].Revision > newest.Revision {
			newest = &revisions[i]
		}
	}
	if newest == nil {
		return nil, "", fmt.Errorf("DaemonSet %s/%s has no ControllerRevision yet", namespace, name)
	}
	return ds, newest.Labels[appsv1.DefaultDaemonSetUniqueLabelKey], nil
}

// revisionByHash finds the DaemonSet's ControllerRevision of a given hash.
func revisionByHash(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, hash string) (*appsv1.ControllerRevision, error) {
	revisions, err := ownedRevisions(ctx, client, ds)
	if err != nil {
		return nil, err
	}
	for i := range revisions {
		if revisions[i].Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == hash {
			return &revisions[i], nil
		}
	}
	return nil, fmt.Errorf("DaemonSet %s/%s has no ControllerRevision %s to roll back to", ds.Namespace, ds.Name, hash)
}

func ownedRevisions(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet) ([]appsv1.ControllerRevision, error) {
	selector, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("DaemonSet %s/%s selector: %w", ds.Namespace, ds.Name, err)
	}
	list, err := client.AppsV1().ControllerRevisions(ds.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return nil, fmt.Errorf("list ControllerRevisions of %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	var owned []appsv1.ControllerRevision
	for _, r := range list.Items {
		if metav1.IsControlledBy(&r, ds) {
			owned = append(owned, r)
		}
	}
	return owned, nil
}

// Pods returns the DaemonSet's pods that are not being deleted.
func Pods(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet) ([]corev1.Pod, error) {
	selector, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("DaemonSet %s/%s selector: %w", ds.Namespace, ds.Name, err)
	}
	list, err := client.CoreV1().Pods(ds.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return nil, fmt.Errorf("list pods of %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	var pods []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && metav1.IsControlledBy(&p, ds) {
			pods = append(pods, p)
		}
	}
	return pods, nil
}

// ignoreNotFound treats an object already gone as done.
func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
