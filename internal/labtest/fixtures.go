package labtest

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// BehaviorAnnotation makes the lab perform API calls as a pod's service account.
const BehaviorAnnotation = "lab.bulkhead.dev/behavior"

// ServiceAccount creates namespace ns, service account ns/name and a binding of it to
// clusterRole (for example "view"). Objects that already exist are kept: tests share accounts.
func (l *Lab) ServiceAccount(ctx context.Context, ns, name, clusterRole string) error {
	created := func(what string, err error) error {
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %s: %w", what, err)
		}
		return nil
	}
	c := l.Client
	_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err := created("namespace "+ns, err); err != nil {
		return err
	}
	_, err = c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err := created("service account "+ns+"/"+name, err); err != nil {
		return err
	}
	binding := fmt.Sprintf("labtest:%s:%s:%s", ns, name, clusterRole)
	_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: binding},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}}}, metav1.CreateOptions{})
	return created("cluster role binding "+binding, err)
}

// FlowCounter sums one APF counter family (for example
// apiserver_flowcontrol_dispatched_requests_total) over the series of one flow schema, as the
// lab's apiserver reports it on /metrics; with several replicas, over every replica (behind a
// balanced address, Options.Endpoint "balancer", the one replica its connection reaches).
func (l *Lab) FlowCounter(ctx context.Context, family, flowSchema string) (float64, error) {
	clients, names := []kubernetes.Interface{l.Client}, []string{l.Config.Host}
	if len(l.replicas) > 1 {
		clients, names = nil, nil
		for _, r := range l.replicas {
			c, err := kubernetes.NewForConfig(l.ReplicaConfig(r))
			if err != nil {
				return 0, fmt.Errorf("client for %s: %w", r.Name, err)
			}
			clients, names = append(clients, c), append(names, r.Name)
		}
	}
	var total float64
	for i, c := range clients {
		raw, err := c.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
		if err != nil {
			return 0, fmt.Errorf("scrape /metrics of %s: %w", names[i], err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
		if err != nil {
			return 0, fmt.Errorf("parse /metrics of %s: %w", names[i], err)
		}
		for _, m := range families[family].GetMetric() {
			for _, label := range m.GetLabel() {
				if label.GetName() == "flow_schema" && label.GetValue() == flowSchema {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total, nil
}

// Behave gives every pod of agent DaemonSet name (its pods labelled app=name, as AgentDaemonSet
// labels them) a new behaviour, as a configuration change without a new pod template would: the
// lab's emulator follows it. An empty behavior removes the annotation, and the pods' requests
// stop while the pods keep running.
func (l *Lab) Behave(ctx context.Context, ns, name, behavior string) error {
	pods, err := l.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
	if err != nil {
		return fmt.Errorf("list %s/%s's pods: %w", ns, name, err)
	}
	value := "null"
	if behavior != "" {
		value = strconv.Quote(behavior)
	}
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%s:%s}}}`, strconv.Quote(BehaviorAnnotation), value))
	for _, p := range pods.Items {
		if _, err := l.Client.CoreV1().Pods(ns).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("behaviour of pod %s/%s: %w", ns, p.Name, err)
		}
	}
	return nil
}

// AgentDaemonSet is a DaemonSet of agents running as service account name that rolls one node
// at a time. A non-empty behavior becomes its pods' BehaviorAnnotation.
func AgentDaemonSet(ns, name, image, behavior string) *appsv1.DaemonSet {
	maxUnavailable := intstr.FromInt32(1)
	labels := map[string]string{"app": name}
	var annotations map[string]string
	if behavior != "" {
		annotations = map[string]string{BehaviorAnnotation: behavior}
	}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &maxUnavailable}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec: corev1.PodSpec{
					ServiceAccountName: name,
					Containers:         []corev1.Container{{Name: "agent", Image: image}},
				},
			},
		},
	}
}
