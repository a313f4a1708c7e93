// Package v1alpha1 is bulkhead's policy API, group bulkhead.dev: RolloutPolicy says which
// DaemonSets bulkhead guards and how. The OpenAPI schema the API server validates with is
// handwritten in deploy/controller/crd-rolloutpolicies.yaml; these types mirror it.
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is bulkhead.dev/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: "bulkhead.dev", Version: "v1alpha1"}

// Resource is the RolloutPolicy resource, for dynamic clients and informers.
var Resource = GroupVersion.WithResource("rolloutpolicies")

// Mode says whether a policy holds rollouts or only watches them.
type Mode string

const (
	// Guard holds every new pod template and rolls it out in waves, halting and rolling back
	// a DaemonSet whose predicted cost is over budget.
	Guard Mode = "guard"
	// Observe never holds: it measures and predicts every rollout, so a team sees what guard
	// would have done before enforcing it.
	Observe Mode = "observe"
)

// RolloutPolicy is a cluster-wide statement of which DaemonSets bulkhead guards.
type RolloutPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RolloutPolicySpec   `json:"spec"`
	Status RolloutPolicyStatus `json:"status,omitempty"`
}

// RolloutPolicySpec selects DaemonSets and sets their rollouts' parameters. Fields left out
// take the product's defaults, so a policy need only say what it means to change.
type RolloutPolicySpec struct {
	// Namespaces guarded, by name. With NamespaceSelector too, a namespace must be in both.
	Namespaces []string `json:"namespaces,omitempty"`
	// NamespaceSelector selects namespaces by label; {} selects every namespace (never
	// kube-system or bulkhead).
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// Selector selects DaemonSets by label; nil selects all of the namespaces'. A DaemonSet
	// labelled bulkhead.dev/opt-out=true is never guarded.
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// Mode is guard (the default) or observe.
	Mode Mode `json:"mode,omitempty"`
	// Waves are cumulative wave sizes, as `bulkhead rollout --waves` takes them.
	Waves []string `json:"waves,omitempty"`
	// Soak is how long each wave is watched once its agents are Ready (a Go duration).
	Soak string `json:"soak,omitempty"`
	// Budget maps a resource of the API servers (cpu, memory, seats) to the share of it, as
	// a percentage such as "25%", the DaemonSet may use at 100% of its fleet.
	Budget map[string]string `json:"budget,omitempty"`
	// Compartments keeps a standing APF lane for every guarded DaemonSet after its rollout.
	Compartments bool `json:"compartments,omitempty"`
}

// RolloutPolicyStatus is what the controller last saw of the DaemonSets a policy selects.
type RolloutPolicyStatus struct {
	ObservedGeneration int64              `json:"observedGeneration,omitempty"`
	Guarded            int32              `json:"guarded,omitempty"`
	Rolling            int32              `json:"rolling,omitempty"`
	Halted             int32              `json:"halted,omitempty"`
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
}

// RolloutPolicyList is a list of policies.
type RolloutPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RolloutPolicy `json:"items"`
}

// ConditionReady is the policy condition that says whether the controller acts on it.
const ConditionReady = "Ready"

// AddToScheme registers the types, for clients that decode them.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &RolloutPolicy{}, &RolloutPolicyList{}, &RolloutStatus{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
