package execute

import (
	"fmt"
	"hash/fnv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/bulkhead-dev/bulkhead/apf"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// maxNameLength is the API's limit for FlowSchema, PriorityLevelConfiguration and PodTemplate
// names (a DNS subdomain).
const maxNameLength = 253

// LaneNames names a DaemonSet's lane "bulkhead-rollout-<namespace>.<name>"; a name that would
// be too long keeps its start and ends with a hash of the full identity, so it stays unique.
func LaneNames(namespace, name string) state.Lane {
	n := "bulkhead-rollout-" + namespace + "." + name
	if len(n) > maxNameLength {
		n = fmt.Sprintf("%s-%08x", n[:maxNameLength-9], identityHash(namespace, name))
	}
	return state.Lane{FlowSchema: n, PriorityLevel: n}
}

// NodeLabelKey is the node label that admits a new DaemonSet's pods to a node during its
// rollout. Label names are at most 63 characters, so the DaemonSet is named by a hash; the
// label's value says which wave admitted the node.
func NodeLabelKey(namespace, name string) string {
	return fmt.Sprintf("%s%08x", gateKeyPrefix, identityHash(namespace, name))
}

// Identity is the string wave order is hashed with.
func Identity(namespace, name string) string { return namespace + "/" + name }

func identityHash(namespace, name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(Identity(namespace, name)))
	return h.Sum32()
}

// ServiceAccountOf is the identity the DaemonSet's pods call the API server as.
func ServiceAccountOf(ds *appsv1.DaemonSet) apf.Subject {
	sa := ds.Spec.Template.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	return apf.ServiceAccount(ds.Namespace, sa)
}

// CheckServiceAccount refuses a service account the lane cannot attribute exactly.
func CheckServiceAccount(ds *appsv1.DaemonSet) error {
	if sa := ServiceAccountOf(ds); sa.Name == "default" {
		return fmt.Errorf("DaemonSet %s/%s runs as the namespace's default service account; give it a service account of its own so its lane measures only its agents", ds.Namespace, ds.Name)
	}
	return nil
}

// podRevision is the controller-revision-hash label the DaemonSet controller puts on pods.
func podRevision(pod *corev1.Pod) string { return pod.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] }
