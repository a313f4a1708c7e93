package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// RolloutStatusResource is the RolloutStatus resource, for dynamic clients and informers.
var RolloutStatusResource = GroupVersion.WithResource("rolloutstatuses")

// RolloutStatus shows one DaemonSet's rollout to `kubectl get rolloutstatuses` (short name
// rst): phase, wave, nodes, and the resource closest to its budget. The rollout's state lives
// on the DaemonSet (rollout.bulkhead.dev/state); this is a view of it the controller keeps in
// step, of the same name, owned by the DaemonSet. Only the controller writes it.
type RolloutStatus struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status RolloutStatusStatus `json:"status,omitempty"`
}

// RolloutStatusStatus is the rollout as its state says (deploy/controller/crd-rolloutstatuses.yaml
// documents each field).
type RolloutStatusStatus struct {
	RolloutID string `json:"rolloutID,omitempty"`
	Mode      string `json:"mode,omitempty"`
	Kind      string `json:"kind,omitempty"`
	Revision  string `json:"revision,omitempty"`
	Phase     string `json:"phase"`
	Paused    bool   `json:"paused,omitempty"`
	// Wave is "current/all", Nodes "running the new pods/eligible".
	Wave  string `json:"wave,omitempty"`
	Nodes string `json:"nodes,omitempty"`
	// Resource, Predicted and Budget are the last decision's resource closest to (or furthest
	// over) its budget, with units: "cpu", "5.00 cores", "0.500 cores (25%)".
	Resource  string `json:"resource,omitempty"`
	Predicted string `json:"predicted,omitempty"`
	Budget    string `json:"budget,omitempty"`
	// Message is the last decision in words, or why the rollout rolls back.
	Message   string           `json:"message,omitempty"`
	Resources []ResourceStatus `json:"resources,omitempty"`
	Updated   *metav1.Time     `json:"updated,omitempty"`
}

// ResourceStatus is one resource's prediction for the whole fleet against its budget.
type ResourceStatus struct {
	Resource      string  `json:"resource"`
	Unit          string  `json:"unit"`
	Predicted     float64 `json:"predicted"`
	PredictedLow  float64 `json:"predictedLow"`
	PredictedHigh float64 `json:"predictedHigh"`
	Budget        float64 `json:"budget,omitempty"`
	Share         float64 `json:"share,omitempty"`
}

// DeepCopyInto copies every field; written by hand (no code generator in the build).
func (in *RolloutStatus) DeepCopyInto(out *RolloutStatus) {
	*out = *in
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Status.Resources = append([]ResourceStatus(nil), in.Status.Resources...)
	out.Status.Updated = in.Status.Updated.DeepCopy()
}

func (in *RolloutStatus) DeepCopy() *RolloutStatus {
	if in == nil {
		return nil
	}
	out := new(RolloutStatus)
	in.DeepCopyInto(out)
	return out
}

func (in *RolloutStatus) DeepCopyObject() runtime.Object { return in.DeepCopy() }
