package execute

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// eventSource names bulkhead as the reporter of its Events.
const eventSource = "bulkhead-rollout"

// Event records a rollout step on the DaemonSet, where `kubectl describe` shows it. Events are
// for humans: failing to write one is reported, never fatal to the rollout.
func Event(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, warning bool, reason, message string) error {
	typ := corev1.EventTypeNormal
	if warning {
		typ = corev1.EventTypeWarning
	}
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: ds.Name + ".", Namespace: ds.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "DaemonSet", APIVersion: "apps/v1", Namespace: ds.Namespace,
			Name: ds.Name, UID: ds.UID, ResourceVersion: ds.ResourceVersion},
		Reason: reason, Message: truncate(message, 1024), Type: typ,
		Source:         corev1.EventSource{Component: eventSource},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "bulkhead.dev/rollout", ReportingInstance: eventSource,
	}
	if _, err := client.CoreV1().Events(ds.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("event %s on DaemonSet %s/%s: %w", reason, ds.Namespace, ds.Name, err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
