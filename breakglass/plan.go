package breakglass

import (
	"fmt"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulkhead-dev/bulkhead/apf"
)

// Action is what install or uninstall did, or would do, to one object.
type Action string

const (
	Created   Action = "created"
	Updated   Action = "updated"
	Unchanged Action = "unchanged"
	Deleted   Action = "deleted"
)

// Change is one line of an install or uninstall report.
type Change struct {
	Kind   string // e.g. "ClusterRole"
	Name   string // namespace/name for namespaced objects
	Action Action
}

func (c Change) String() string { return c.Kind + " " + c.Name + " " + string(c.Action) }

// decide compares an object in the cluster (nil when absent) with the desired one. same reports
// whether the fields bulkhead sets already hold the desired values. It refuses to adopt an
// object bulkhead does not own and to write into one that is being deleted.
func decide(kind string, existing, desired metav1.Object, same bool) (Action, error) {
	if existing == nil {
		return Created, nil
	}
	name := qualifiedName(desired)
	if !apf.IsManaged(existing) {
		return "", fmt.Errorf("%s %s exists and is not managed by bulkhead (no %s=%s label); refusing to change it",
			kind, name, apf.ManagedByLabel, apf.ManagedByValue)
	}
	if existing.GetDeletionTimestamp() != nil {
		return "", fmt.Errorf("%s %s is being deleted (by an uninstall?); wait until it is gone and run install again", kind, name)
	}
	if same && metaSame(existing, desired) {
		return Unchanged, nil
	}
	return Updated, nil
}

func qualifiedName(o metav1.Object) string {
	if o.GetNamespace() != "" {
		return o.GetNamespace() + "/" + o.GetName()
	}
	return o.GetName()
}

// metaSame: every label and annotation bulkhead sets is present with its value. Labels others
// add are theirs to keep.
func metaSame(existing, desired metav1.Object) bool {
	return subset(desired.GetLabels(), existing.GetLabels()) && subset(desired.GetAnnotations(), existing.GetAnnotations())
}

func subset(want, have map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// mergeMeta writes bulkhead's labels and annotations into existing, keeping everyone else's.
func mergeMeta(existing, desired metav1.Object) {
	existing.SetLabels(merged(existing.GetLabels(), desired.GetLabels()))
	existing.SetAnnotations(merged(existing.GetAnnotations(), desired.GetAnnotations()))
}

func merged(base, over map[string]string) map[string]string {
	if len(over) == 0 {
		return base
	}
	out := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

// The per-kind comparisons and merges: what "the fields bulkhead sets" means for each kind.

func sameServiceAccount(e, d *corev1.ServiceAccount) bool {
	return equality.Semantic.DeepEqual(e.AutomountServiceAccountToken, d.AutomountServiceAccountToken)
}

func mergeServiceAccount(e, d *corev1.ServiceAccount) *corev1.ServiceAccount {
	out := e.DeepCopy()
	mergeMeta(out, d)
	out.AutomountServiceAccountToken = d.AutomountServiceAccountToken
	return out
}

func mergeNamespace(e, d *corev1.Namespace) *corev1.Namespace {
	out := e.DeepCopy()
	mergeMeta(out, d)
	return out
}

func sameClusterRole(e, d *rbacv1.ClusterRole) bool {
	return e.AggregationRule == nil && equality.Semantic.DeepEqual(e.Rules, d.Rules)
}

func mergeClusterRole(e, d *rbacv1.ClusterRole) *rbacv1.ClusterRole {
	out := e.DeepCopy()
	mergeMeta(out, d)
	out.Rules, out.AggregationRule = d.Rules, nil
	return out
}

func sameRole(e, d *rbacv1.Role) bool { return equality.Semantic.DeepEqual(e.Rules, d.Rules) }

func mergeRole(e, d *rbacv1.Role) *rbacv1.Role {
	out := e.DeepCopy()
	mergeMeta(out, d)
	out.Rules = d.Rules
	return out
}

// A binding's roleRef is immutable: a binding whose roleRef differs must be deleted and
// recreated, which install refuses to do silently (bindingConflict).
func sameClusterRoleBinding(e, d *rbacv1.ClusterRoleBinding) bool {
	return e.RoleRef == d.RoleRef && equality.Semantic.DeepEqual(e.Subjects, d.Subjects)
}

func mergeClusterRoleBinding(e, d *rbacv1.ClusterRoleBinding) *rbacv1.ClusterRoleBinding {
	out := e.DeepCopy()
	mergeMeta(out, d)
	out.Subjects = d.Subjects
	return out
}

func sameRoleBinding(e, d *rbacv1.RoleBinding) bool {
	return e.RoleRef == d.RoleRef && equality.Semantic.DeepEqual(e.Subjects, d.Subjects)
}

func mergeRoleBinding(e, d *rbacv1.RoleBinding) *rbacv1.RoleBinding {
	out := e.DeepCopy()
	mergeMeta(out, d)
	out.Subjects = d.Subjects
	return out
}

func bindingConflict(kind, name string, have, want rbacv1.RoleRef) error {
	if have == want {
		return nil
	}
	return fmt.Errorf("%s %s refers to %s %s, want %s %s; a roleRef cannot change: run bulkhead uninstall, then install",
		kind, name, have.Kind, have.Name, want.Kind, want.Name)
}

// An admission policy and its binding are compared on their whole spec: install sets every
// field the API server would default, so a stored copy compares equal to the desired one.
func samePolicy(e, d *admissionv1.ValidatingAdmissionPolicy) bool {
	return equality.Semantic.DeepEqual(e.Spec, d.Spec)
}

func mergePolicy(e, d *admissionv1.ValidatingAdmissionPolicy) *admissionv1.ValidatingAdmissionPolicy {
	out := e.DeepCopy()
	mergeMeta(out, d)
	out.Spec = d.Spec
	return out
}

func samePolicyBinding(e, d *admissionv1.ValidatingAdmissionPolicyBinding) bool {
	return equality.Semantic.DeepEqual(e.Spec, d.Spec)
}

func mergePolicyBinding(e, d *admissionv1.ValidatingAdmissionPolicyBinding) *admissionv1.ValidatingAdmissionPolicyBinding {
	out := e.DeepCopy()
	mergeMeta(out, d)
	out.Spec = d.Spec
	return out
}
