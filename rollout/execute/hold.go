package execute

import (
	"context"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// What the controller's admission (deploy/controller/admission.yaml) writes on a DaemonSet it
// holds, as far as a rollout needs it; controller/hold names the whole contract.
const (
	// HoldKey is the node label admission requires of a new DaemonSet it holds; no node ever
	// carries it. It is a gate like a rollout's (NodeLabelKey), so the user's template is the
	// same whichever of them a template carries.
	HoldKey = "rollout.bulkhead.dev/hold"
	// HeldAnnotation marks a DaemonSet admission holds: HeldCreate (a new DaemonSet, gated off
	// every node) or HeldUpdate (a new pod template, OnDelete keeping the old pods).
	HeldAnnotation = "rollout.bulkhead.dev/held"
	HeldCreate     = "create"
	HeldUpdate     = "update"
	// RequestedStrategyAnnotation is the update strategy last asked for (JSON), which admission
	// replaced by OnDelete; it follows every write of the DaemonSet while it is held.
	RequestedStrategyAnnotation = "rollout.bulkhead.dev/requested-strategy"
)

// RequestedStrategy is the update strategy admission recorded for ds; ok is false when it
// recorded none.
func RequestedStrategy(ds *appsv1.DaemonSet) (s appsv1.DaemonSetUpdateStrategy, ok bool, err error) {
	raw, found := ds.Annotations[RequestedStrategyAnnotation]
	if !found {
		return s, false, nil
	}
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return s, true, fmt.Errorf("DaemonSet %s/%s: annotation %s %q: %w", ds.Namespace, ds.Name, RequestedStrategyAnnotation, raw, err)
	}
	switch s.Type {
	case appsv1.RollingUpdateDaemonSetStrategyType, appsv1.OnDeleteDaemonSetStrategyType:
	default:
		return s, true, fmt.Errorf("DaemonSet %s/%s: annotation %s: unknown strategy type %q", ds.Namespace, ds.Name, RequestedStrategyAnnotation, s.Type)
	}
	return s, true, nil
}

// End is a rollout's last write: its final state (Complete or RolledBack), and in the same
// update the DaemonSet given back. The user's update strategy is restored — for a DaemonSet
// admission held (next.Held), the one last requested (a GitOps tool may have changed it during
// the rollout), and the hold's annotations go. A new DaemonSet of the controller's that rolled
// back stays held, gated and OnDelete: re-applying its manifest then changes nothing. An
// observed rollout changed nothing, so it gives nothing back.
func End(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, prev, next state.State) (*appsv1.DaemonSet, error) {
	if next.Observing() || (next.Held && next.Kind == state.Create && next.Phase == state.RolledBack) {
		return SaveState(ctx, client, ds, prev, next)
	}
	return Write(ctx, client, ds, &prev, next, func(d *appsv1.DaemonSet) error {
		if next.Held {
			release(d, next.OriginalStrategy)
		} else if next.OriginalStrategy.Type != "" {
			d.Spec.UpdateStrategy = next.OriginalStrategy
		}
		return nil
	})
}

// Release lets a held DaemonSet go without a rollout (every pod runs its template already, or
// it was opted out): the user's template (without the hold's gate) and the update strategy last
// requested come back and the hold's annotations go, in one update that refuses a template
// other than revision's.
func Release(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, revision string) error {
	err := updateDaemonSet(ctx, client, ds, func(d *appsv1.DaemonSet) (bool, error) {
		rev, err := TemplateRevision(d.Spec.Template)
		if err != nil {
			return false, err
		}
		if rev != revision {
			return false, fmt.Errorf("%w (revision %s arrived, releasing %s)", ErrSuperseded, rev, revision)
		}
		d.Spec.Template = UserTemplate(d.Spec.Template)
		release(d, appsv1.DaemonSetUpdateStrategy{})
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("release DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	return nil
}

// release restores the update strategy last requested (fallback when none was recorded) and
// removes the hold's annotations.
func release(d *appsv1.DaemonSet, fallback appsv1.DaemonSetUpdateStrategy) {
	strategy := fallback
	if requested, ok, err := RequestedStrategy(d); err == nil && ok {
		strategy = requested
	}
	if strategy.Type != "" {
		d.Spec.UpdateStrategy = strategy
	}
	delete(d.Annotations, HeldAnnotation)
	delete(d.Annotations, RequestedStrategyAnnotation)
}

// The record of a halted pod template, which the ValidatingAdmissionPolicy bulkhead-halted
// takes as its parameter: an update that brings the template back is refused.
const (
	// HaltedLabel marks a PodTemplate that records a halted pod template.
	HaltedLabel = "rollout.bulkhead.dev/halted"
	// HaltedDaemonSetAnnotation names the DaemonSet a record belongs to;
	// HaltedReasonAnnotation says why it halted (quoted in the refusal).
	HaltedDaemonSetAnnotation = "rollout.bulkhead.dev/daemonset"
	HaltedReasonAnnotation    = "rollout.bulkhead.dev/reason"
)

// maxReason bounds the reason kept on a halted record (an annotation quoted in a refusal).
const maxReason = 1000

// HaltedRecord is the PodTemplate that keeps a halted pod template halted: admission refuses
// an update of ds that brings template back. It is owned by ds, so it goes with it.
func HaltedRecord(ds *appsv1.DaemonSet, template corev1.PodTemplateSpec, reason string) (*corev1.PodTemplate, error) {
	// The record is compared with what a client re-applies, which never carries bulkhead's mark.
	user := unmarked(UserTemplate(template))
	rev, err := TemplateRevision(user)
	if err != nil {
		return nil, err
	}
	name := ds.Name + ".halted-" + rev
	if len(name) > maxNameLength {
		name = ds.Name[:maxNameLength-len(".halted-")-len(rev)] + ".halted-" + rev
	}
	if r := []rune(reason); len(r) > maxReason {
		reason = string(r[:maxReason-1]) + "…"
	}
	controller := true
	return &corev1.PodTemplate{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodTemplate"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ds.Namespace,
			Labels:      map[string]string{HaltedLabel: "true", "app.kubernetes.io/managed-by": "bulkhead"},
			Annotations: map[string]string{HaltedDaemonSetAnnotation: ds.Name, HaltedReasonAnnotation: reason},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: ds.UID,
				Controller: &controller}},
		},
		Template: user,
	}, nil
}

// RecordHalted writes the halted record of the template st rolled out, before its rollback
// replaces it: a GitOps tool re-applying it is then refused with the reason instead of starting
// the same rollout again, and again. Only an update of a DaemonSet admission held needs one (a
// held new DaemonSet keeps its halted template, gated, and re-applying it changes nothing).
// Once the rollback restored the previous template there is nothing left to record: the record
// exists already, or the template was superseded before it could halt.
func RecordHalted(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, st state.State) error {
	if !st.Held || st.Kind != state.Update {
		return nil
	}
	if err := RequireRevision(ds, st); err != nil {
		return nil
	}
	rec, err := HaltedRecord(ds, ds.Spec.Template, st.Reason)
	if err != nil {
		return err
	}
	if _, err := client.CoreV1().PodTemplates(ds.Namespace).Create(ctx, rec, metav1.CreateOptions{FieldManager: fieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("record the halted template of %s/%s as PodTemplate %s: %w", ds.Namespace, ds.Name, rec.Name, err)
	}
	return nil
}
