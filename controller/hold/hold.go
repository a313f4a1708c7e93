// Package hold is the contract between bulkhead's admission (deploy/controller/admission.yaml,
// CEL evaluated inside kube-apiserver) and the code that acts on a held DaemonSet: the names of
// the annotations and labels admission writes, and pure readers of them. The CEL cannot import
// this package, so every name here is spelt out in the YAML too; the admission e2e test
// checks that both agree.
package hold

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/bulkhead-dev/bulkhead/rollout/execute"
)

const (
	// HeldAnnotation marks a DaemonSet bulkhead holds: "create" (a new DaemonSet, gated off
	// every node) or "update" (a new pod template, OnDelete keeping the old pods). Admission
	// writes it and keeps it; the rollout core removes it when the rollout no longer needs
	// the DaemonSet held.
	HeldAnnotation = execute.HeldAnnotation
	// HeldCreate and HeldUpdate are HeldAnnotation's values.
	HeldCreate = execute.HeldCreate
	HeldUpdate = execute.HeldUpdate
	// RequestedStrategyAnnotation is the update strategy last asked for, as the JSON of an
	// appsv1.DaemonSetUpdateStrategy: admission replaced it by OnDelete.
	RequestedStrategyAnnotation = execute.RequestedStrategyAnnotation
	// HoldKey is the node label a new DaemonSet's template requires while admission holds it.
	// No node ever carries it (bulkhead labels nodes with per-DaemonSet gate keys only).
	HoldKey = execute.HoldKey

	// HaltedLabel marks a PodTemplate that records a halted pod template; the
	// ValidatingAdmissionPolicy bulkhead-halted refuses updates that bring it back.
	HaltedLabel = execute.HaltedLabel
	// DaemonSetAnnotation names the DaemonSet a halted record belongs to; ReasonAnnotation
	// says why it halted (quoted in the refusal).
	DaemonSetAnnotation = execute.HaltedDaemonSetAnnotation
	ReasonAnnotation    = execute.HaltedReasonAnnotation

	// FieldManager is bulkhead's field manager; admission lets its writes through untouched.
	FieldManager = "bulkhead"
	// ControllerNamespace and ControllerServiceAccount are the controller's identity, which
	// admission lets through too.
	ControllerNamespace      = "bulkhead"
	ControllerServiceAccount = "bulkhead-controller"
)

// ControllerUser is the controller's user name as the API server sees it.
func ControllerUser() string {
	return "system:serviceaccount:" + ControllerNamespace + ":" + ControllerServiceAccount
}

// Held returns how admission holds ds ("create" or "update"), or "" when it does not.
func Held(ds *appsv1.DaemonSet) string { return ds.Annotations[HeldAnnotation] }

// UserTemplate is the pod template as its author wrote it: the template without bulkhead's
// hold and gate requirements (execute.UserTemplate, which the rollout core uses too).
func UserTemplate(t corev1.PodTemplateSpec) corev1.PodTemplateSpec { return execute.UserTemplate(t) }

// Revision names the user template: the same template, held or not, has the same revision.
// A rollout records the revision it rolls out (state.State.Revision).
func Revision(t corev1.PodTemplateSpec) (string, error) { return execute.TemplateRevision(t) }

// RequestedStrategy is the update strategy admission recorded for ds; ok is false when it
// recorded none.
func RequestedStrategy(ds *appsv1.DaemonSet) (appsv1.DaemonSetUpdateStrategy, bool, error) {
	return execute.RequestedStrategy(ds)
}

// HaltedRecord is the PodTemplate that keeps a halted pod template halted: admission refuses
// an update of ds that brings template back. It is owned by ds, so it goes with it. The
// rollout core writes it when it rolls back an update of a DaemonSet admission held.
func HaltedRecord(ds *appsv1.DaemonSet, template corev1.PodTemplateSpec, reason string) (*corev1.PodTemplate, error) {
	return execute.HaltedRecord(ds, template, reason)
}
