package apf

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels and annotations that mark APF objects as bulkhead's. Ownership is checked before every
// update or delete so bulkhead never rewrites a FlowSchema someone else wrote.
const (
	// ManagedByLabel is the well-known app.kubernetes.io label; its value is ManagedByValue.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "bulkhead"
	// PurposeLabel says which bulkhead feature owns the object.
	PurposeLabel = "bulkhead.dev/purpose"
	// OwnerAnnotation names the thing the object exists for, e.g. "daemonset/ns/name".
	OwnerAnnotation = "bulkhead.dev/owner"
)

// Purpose is the value of PurposeLabel.
type Purpose string

const (
	PurposeRolloutLane Purpose = "rollout-lane"
	PurposeBreakGlass  Purpose = "break-glass"
	PurposeShed        Purpose = "shed"
)

// Ownership is stamped on every object built here.
type Ownership struct {
	Purpose Purpose
	// Owner is free text naming what the object serves (OwnerAnnotation); may be empty.
	Owner string
	// Annotations are extra annotations (for example a shed's reason and expiry).
	Annotations map[string]string
}

func (o Ownership) objectMeta(name string) metav1.ObjectMeta {
	meta := metav1.ObjectMeta{
		Name: name,
		Labels: map[string]string{
			ManagedByLabel: ManagedByValue,
			PurposeLabel:   string(o.Purpose),
		},
	}
	if o.Owner != "" || len(o.Annotations) > 0 {
		meta.Annotations = map[string]string{}
		for k, v := range o.Annotations {
			meta.Annotations[k] = v
		}
		if o.Owner != "" {
			meta.Annotations[OwnerAnnotation] = o.Owner
		}
	}
	return meta
}

// IsManaged reports whether an object's labels mark it as bulkhead's.
func IsManaged(meta metav1.Object) bool {
	return meta.GetLabels()[ManagedByLabel] == ManagedByValue
}

// ManagedSelector selects bulkhead-owned APF objects of one purpose (all purposes when empty).
func ManagedSelector(p Purpose) string {
	sel := ManagedByLabel + "=" + ManagedByValue
	if p != "" {
		sel += "," + PurposeLabel + "=" + string(p)
	}
	return sel
}
