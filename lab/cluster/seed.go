package cluster

import (
	"context"
	"fmt"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

const (
	// FillerNamespace holds the lab's filler Deployments and Services.
	FillerNamespace = "lab"
	// NodeLabel marks the lab's fake nodes.
	NodeLabel = "lab.bulkhead.dev/node"
	// kubeletsUser is the fake kubelets' identity; it is in system:nodes so APF classifies its
	// traffic as kubelet traffic, but it is not a per-node identity, so it may manage every node.
	kubeletsUser = "bulkhead-lab:kubelets"
)

var zones = []string{"zone-a", "zone-b", "zone-c"}

// NodeName is the name of the lab's i-th fake node.
func NodeName(i int) string { return fmt.Sprintf("node-%04d", i) }

// ServiceName is the name of the lab's i-th filler Service and Deployment.
func ServiceName(i int) string { return fmt.Sprintf("svc-%03d", i) }

// grantKubelets lets the fake kubelets manage nodes, leases and pod status cluster-wide.
func grantKubelets(ctx context.Context, client kubernetes.Interface) error {
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "bulkhead-lab:kubelets"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"nodes", "nodes/status", "pods", "pods/status", "events"}, Verbs: []string{"*"}},
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"*"}},
			{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"*"}},
		},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bulkhead-lab:kubelets"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: kubeletsUser}},
	}
	if _, err := client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create ClusterRole %s: %w", role.Name, err)
	}
	if _, err := client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create ClusterRoleBinding %s: %w", binding.Name, err)
	}
	return nil
}

// seedNodes creates the fake nodes, each with its own /24 pod CIDR (KWOK assigns pod IPs
// from it) and a zone label spread round-robin.
func seedNodes(ctx context.Context, client kubernetes.Interface, count int) error {
	return parallel(count, 16, func(i int) error {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name: NodeName(i),
				Labels: map[string]string{
					"kubernetes.io/hostname":      NodeName(i),
					"kubernetes.io/os":            "linux",
					"kubernetes.io/arch":          "amd64",
					"topology.kubernetes.io/zone": zones[i%len(zones)],
					NodeLabel:                     "true",
				},
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			},
			Spec: corev1.NodeSpec{
				PodCIDR:  podCIDR(i),
				PodCIDRs: []string{podCIDR(i)},
			},
			Status: corev1.NodeStatus{
				Capacity:    nodeResources(),
				Allocatable: nodeResources(),
				Addresses:   []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: nodeIP(i)}},
				NodeInfo:    corev1.NodeSystemInfo{KubeletVersion: "v1.37.2-lab", OperatingSystem: "linux", Architecture: "amd64"},
			},
		}
		if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", node.Name, err)
		}
		return nil
	})
}

func nodeResources() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
}

// podCIDR gives node i the i-th /24 of 10.128.0.0/9.
func podCIDR(i int) string { return fmt.Sprintf("10.%d.%d.0/24", 128+i/256, i%256) }

// nodeIP gives node i an address in 172.16.0.0/12; nothing listens there, it is only data.
func nodeIP(i int) string { return fmt.Sprintf("172.16.%d.%d", i/250, 1+i%250) }

// seedServices creates the filler namespace and, per service, a Deployment and a Service
// selecting it; every fifth Service is headless. podsTotal filler pods are split across them.
func seedServices(ctx context.Context, client kubernetes.Interface, services, podsTotal int) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: FillerNamespace}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", FillerNamespace, err)
	}
	return parallel(services, 8, func(i int) error {
		name := ServiceName(i)
		replicas := int32(podsTotal / services)
		if i < podsTotal%services {
			replicas++
		}
		labels := map[string]string{"app": name}
		deploy := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: FillerNamespace, Labels: labels},
			Spec: appsv1.DeploymentSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{
						Containers: []corev1.Container{{
							Name:  "app",
							Image: "registry.k8s.io/pause:3.10",
							Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
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
		}
		if _, err := client.AppsV1().Deployments(FillerNamespace).Create(ctx, deploy, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create deployment %s: %w", name, err)
		}
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: FillerNamespace, Labels: labels},
			Spec: corev1.ServiceSpec{
				Selector: labels,
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}},
			},
		}
		if i%5 == 4 {
			svc.Spec.ClusterIP = corev1.ClusterIPNone
		}
		if _, err := client.CoreV1().Services(FillerNamespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create service %s: %w", name, err)
		}
		return nil
	})
}

// parallel runs fn(0..n-1) on at most workers goroutines and returns the first error.
func parallel(n, workers int, fn func(i int) error) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return firstErr
}
