// Package hold is the contract between bulkhead's admission (deploy/controller/admission.yaml,
// CEL evaluated inside kube-apiserver) and the code that acts on a held DaemonSet: the names of
// the annotations and labels admission writes, and pure readers of them. The CEL cannot import
// this package, so every name here is spelt out in the YAML too; the admission e2e test
// checks that both agree.
package hold

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulkhead-dev/bulkhead/rollout/execute"
)

const (
	// HeldAnnotation marks a DaemonSet bulkhead holds: "create" (a new DaemonSet, gated off
	// every node) or "update" (a new pod template, OnDelete keeping the old pods). Admission
	// writes it and keeps it; the rollout core removes it when the rollout no longer needs
	// the DaemonSet held.
	HeldAnnotation = "rollout.bulkhead.dev/held"
	// HeldCreate and HeldUpdate are HeldAnnotation's values.
	HeldCreate = "create"
	HeldUpdate = "update"
	// RequestedStrategyAnnotation is the update strategy last asked for, as the JSON of an
	// appsv1.DaemonSetUpdateStrategy: admission replaced it by OnDelete.
	RequestedStrategyAnnotation = "rollout.bulkhead.dev/requested-strategy"
	// AdoptedRevisionAnnotation is the Revision of the user template the controller last
	// started a rollout for; a held DaemonSet whose template has another revision gets a new one.
	AdoptedRevisionAnnotation = "rollout.bulkhead.dev/adopted-revision"
	// HoldKey is the node label a new DaemonSet's template requires while admission holds it.
	// No node ever carries it (bulkhead labels nodes with per-DaemonSet gate keys only).
	HoldKey = "rollout.bulkhead.dev/hold"
	// gatePrefix starts the per-DaemonSet gate key of a rollout (execute.NodeLabelKey).
	gatePrefix = "rollout.bulkhead.dev/gate-"

	// HaltedLabel marks a PodTemplate that records a halted pod template; the
	// ValidatingAdmissionPolicy bulkhead-halted refuses updates that bring it back.
	HaltedLabel = "rollout.bulkhead.dev/halted"
	// DaemonSetAnnotation names the DaemonSet a halted record belongs to; ReasonAnnotation
	// says why it halted (quoted in the refusal).
	DaemonSetAnnotation = "rollout.bulkhead.dev/daemonset"
	ReasonAnnotation    = "rollout.bulkhead.dev/reason"

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

// isBulkheadKey reports whether a node label key is one of bulkhead's gates.
func isBulkheadKey(key string) bool { return key == HoldKey || strings.HasPrefix(key, gatePrefix) }

// UserTemplate is the pod template as its author wrote it: the template without bulkhead's
// hold and gate requirements.
func UserTemplate(t corev1.PodTemplateSpec) corev1.PodTemplateSpec {
	out := *t.DeepCopy()
	for _, key := range gateKeys(t.Spec) {
		out.Spec = execute.Ungate(out.Spec, key)
	}
	return out
}

func gateKeys(spec corev1.PodSpec) []string {
	if spec.Affinity == nil || spec.Affinity.NodeAffinity == nil || spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	seen := map[string]bool{}
	var keys []string
	for _, term := range spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, e := range term.MatchExpressions {
			if isBulkheadKey(e.Key) && e.Operator == corev1.NodeSelectorOpExists && !seen[e.Key] {
				seen[e.Key] = true
				keys = append(keys, e.Key)
			}
		}
	}
	return keys
}

// Revision names the user template: the same template, held or not, has the same revision.
func Revision(t corev1.PodTemplateSpec) (string, error) {
	data, err := json.Marshal(UserTemplate(t))
	if err != nil {
		return "", fmt.Errorf("encode pod template: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:16], nil
}

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

// maxNameLength is the API's limit for a PodTemplate's name (a DNS subdomain).
const maxNameLength = 253

// HaltedRecord is the PodTemplate that keeps a halted pod template halted: admission refuses
// an update of ds that brings template back. It is owned by ds, so it goes with it.
func HaltedRecord(ds *appsv1.DaemonSet, template corev1.PodTemplateSpec, reason string) (*corev1.PodTemplate, error) {
	user := UserTemplate(template)
	rev, err := Revision(user)
	if err != nil {
		return nil, err
	}
	name := ds.Name + ".halted-" + rev
	if len(name) > maxNameLength {
		name = ds.Name[:maxNameLength-len(".halted-")-len(rev)] + ".halted-" + rev
	}
	if len(reason) > 1000 {
		reason = reason[:999] + "…"
	}
	controller := true
	return &corev1.PodTemplate{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodTemplate"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ds.Namespace,
			Labels:      map[string]string{HaltedLabel: "true", "app.kubernetes.io/managed-by": "bulkhead"},
			Annotations: map[string]string{DaemonSetAnnotation: ds.Name, ReasonAnnotation: reason},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: ds.UID,
				Controller: &controller}},
		},
		Template: user,
	}, nil
}
