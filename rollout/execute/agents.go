package execute

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// AgentCounts are the DaemonSet's pods by version, as analyze.Agents wants them.
type AgentCounts struct {
	// New and NewReady count pods at the DaemonSet's current revision; Old the others.
	New, NewReady, Old int
}

// CountAgents counts the DaemonSet's pods at the current revision (and Ready) and the others.
func CountAgents(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet) (AgentCounts, error) {
	ds, current, err := CurrentRevision(ctx, client, ds.Namespace, ds.Name)
	if err != nil {
		return AgentCounts{}, err
	}
	pods, err := Pods(ctx, client, ds)
	if err != nil {
		return AgentCounts{}, err
	}
	var c AgentCounts
	for i := range pods {
		if podRevision(&pods[i]) != current {
			c.Old++
			continue
		}
		c.New++
		if PodReady(&pods[i]) {
			c.NewReady++
		}
	}
	return c, nil
}

// PodReady says whether the pod's Ready condition is true.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
