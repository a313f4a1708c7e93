package cluster

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulkhead-dev/bulkhead/lab/behavior"
)

// Background loads: what other clients the lab adds once it is ready.
const (
	BackgroundNone = "none"
	BackgroundBusy = "busy"
)

// BusyNamespace holds the busy baseline's identities, their pods and what they create.
const BusyNamespace = "busy"

// busyClient is one of a production cluster's other clients: a service account with the RBAC its
// behaviour needs and nothing more (an agent refused with 403s would load the server with nothing),
// run by a Deployment's pods.
type busyClient struct {
	name     string
	replicas int32
	behavior string
}

// busyClients move the load over time the way a production cluster's clients do: CI bursts every
// half minute, a controller's periodic re-list, a job's spike every minute, under a floor of watches.
var busyClients = []busyClient{
	// A CI system: bursts of short-lived test pods (the scheduler binds them, the fake kubelets
	// run them, the deletes end them), a look at its own pods, its status in a ConfigMap.
	// Rights: edit in busy.
	{name: "ci", replicas: 1, behavior: `
- create: pods
  namespace: busy
  every: 30s
  burst: 10
- delete: pods
  namespace: busy
  every: 30s
  burst: 10
- list: pods
  namespace: busy
  labelSelector: lab.bulkhead.dev/created-by=$(POD_NAME)
  every: 10s
- patch: configmaps/busy/ci-status
  every: 10s
`},
	// A controller without an informer: a paged re-list of every pod, and leader election
	// through a ConfigMap it reads and writes back. Rights: view cluster-wide, update of its
	// one ConfigMap.
	{name: "controller", replicas: 1, behavior: `
- list: pods
  limit: 500
  every: 30s
- update: configmaps/busy/controller-leader
  every: 10s
`},
	// Informer-based clients (dashboards, service meshes): long watches of pods, ConfigMaps,
	// nodes and Services. Rights: view cluster-wide, read nodes.
	{name: "watcher", replicas: 2, behavior: `
- watch: pods
- watch: configmaps
- watch: nodes
- watch: services
`},
	// A periodic report job: once a minute, a burst of lists and gets.
	// Rights: view cluster-wide, read nodes.
	{name: "report", replicas: 1, behavior: `
- list: nodes
  every: 1m
  burst: 2
- list: pods
  namespace: lab
  every: 1m
  burst: 5
- get: configmaps/busy/ci-status
  every: 1m
  burst: 20
- get: nodes/node-0000
  every: 1m
  burst: 10
`},
}

// busyConfigMaps are the objects the busy clients patch and update.
var busyConfigMaps = []string{"ci-status", "controller-leader"}

// startBusy creates the busy baseline and waits until every one of its pods is Running, so
// that once the lab says ready the baseline's traffic has started.
func (l *lab) startBusy(ctx context.Context, say func(string, ...any)) error {
	for _, obj := range busyObjects() {
		if err := l.create(ctx, obj); err != nil {
			return fmt.Errorf("busy background: %w", err)
		}
	}
	want := int32(0)
	for _, c := range busyClients {
		want += c.replicas
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		running := int32(0)
		for _, obj := range l.pods.GetStore().List() {
			pod := obj.(*corev1.Pod)
			if pod.Namespace == BusyNamespace && pod.Labels[busyLabel] != "" && pod.Status.Phase == corev1.PodRunning && pod.DeletionTimestamp == nil {
				running++
			}
		}
		if running >= want {
			say("busy background: %d clients' pods Running in namespace %s", running, BusyNamespace)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("busy background: %d/%d pods Running after 2 minutes", running, want)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// busyLabel names a busy client on its Deployment's pods (and not on the pods CI creates).
const busyLabel = "lab.bulkhead.dev/busy-client"

// busyObjects are the baseline's objects, in creation order: namespace, identities and their
// rights, the ConfigMaps they write, then the Deployments that run them.
func busyObjects() []any {
	ns := BusyNamespace
	sa := func(names ...string) []rbacv1.Subject {
		var out []rbacv1.Subject
		for _, n := range names {
			out = append(out, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: n})
		}
		return out
	}
	clusterRole := func(name string) rbacv1.RoleRef {
		return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}
	}
	objs := []any{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}}
	for _, c := range busyClients {
		objs = append(objs, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: c.name, Namespace: ns}})
	}
	objs = append(objs,
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "busy:ci-edit", Namespace: ns},
			RoleRef:    clusterRole("edit"),
			Subjects:   sa("ci"),
		},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "bulkhead-lab:busy-view"},
			RoleRef:    clusterRole("view"),
			Subjects:   sa("controller", "watcher", "report"),
		},
		// view covers namespaced objects only; nodes need a role of their own.
		&rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "bulkhead-lab:busy-node-reader"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}}},
		},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "bulkhead-lab:busy-node-reader"},
			RoleRef:    clusterRole("bulkhead-lab:busy-node-reader"),
			Subjects:   sa("watcher", "report"),
		},
		&rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "busy:controller-leader", Namespace: ns},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"},
				ResourceNames: []string{"controller-leader"}, Verbs: []string{"get", "update"}}},
		},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "busy:controller-leader", Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "busy:controller-leader"},
			Subjects:   sa("controller"),
		},
	)
	for _, name := range busyConfigMaps {
		objs = append(objs, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}})
	}
	for _, c := range busyClients {
		labels := map[string]string{busyLabel: c.name}
		objs = append(objs, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: c.name, Namespace: ns, Labels: labels},
			Spec: appsv1.DeploymentSpec{
				Replicas: new(c.replicas),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{behavior.Annotation: c.behavior}},
					Spec: corev1.PodSpec{
						ServiceAccountName: c.name,
						Containers: []corev1.Container{{
							Name:  c.name,
							Image: "registry.k8s.io/pause:3.10",
							Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
								corev1.ResourceCPU:    resource.MustParse("10m"),
								corev1.ResourceMemory: resource.MustParse("16Mi"),
							}},
						}},
						AutomountServiceAccountToken: new(false),
						EnableServiceLinks:           new(false),
					},
				},
			},
		})
	}
	return objs
}

// create creates one of the objects busyObjects returns; one that exists already is kept.
func (l *lab) create(ctx context.Context, obj any) error {
	var err error
	var what string
	opts := metav1.CreateOptions{}
	switch o := obj.(type) {
	case *corev1.Namespace:
		what = "namespace " + o.Name
		_, err = l.client.CoreV1().Namespaces().Create(ctx, o, opts)
	case *corev1.ServiceAccount:
		what = "service account " + o.Namespace + "/" + o.Name
		_, err = l.client.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, opts)
	case *corev1.ConfigMap:
		what = "config map " + o.Namespace + "/" + o.Name
		_, err = l.client.CoreV1().ConfigMaps(o.Namespace).Create(ctx, o, opts)
	case *rbacv1.Role:
		what = "role " + o.Namespace + "/" + o.Name
		_, err = l.client.RbacV1().Roles(o.Namespace).Create(ctx, o, opts)
	case *rbacv1.RoleBinding:
		what = "role binding " + o.Namespace + "/" + o.Name
		_, err = l.client.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, opts)
	case *rbacv1.ClusterRole:
		what = "cluster role " + o.Name
		_, err = l.client.RbacV1().ClusterRoles().Create(ctx, o, opts)
	case *rbacv1.ClusterRoleBinding:
		what = "cluster role binding " + o.Name
		_, err = l.client.RbacV1().ClusterRoleBindings().Create(ctx, o, opts)
	case *appsv1.Deployment:
		what = "deployment " + o.Namespace + "/" + o.Name
		_, err = l.client.AppsV1().Deployments(o.Namespace).Create(ctx, o, opts)
	default:
		return fmt.Errorf("no way to create a %T", obj)
	}
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create %s: %w", what, err)
	}
	return nil
}
