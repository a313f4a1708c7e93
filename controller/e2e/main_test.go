// Package e2e checks bulkhead controller against the lab's real kube-apiserver and DaemonSet
// controller: the policy API's validation, the admission that holds DaemonSets (with no
// controller running at all), and the controller process running as its own service account.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/bulkhead-dev/bulkhead/breakglass"
	"github.com/bulkhead-dev/bulkhead/controller"
	"github.com/bulkhead-dev/bulkhead/controller/api/v1alpha1"
	"github.com/bulkhead-dev/bulkhead/controller/hold"
	"github.com/bulkhead-dev/bulkhead/internal/labtest"
)

var lab *labtest.Lab

// nodes is the lab's size for the tests: 12 nodes of 40 pods, so that 3 of the seed's agents
// (a LIST of every pod every 100 ms) show that 12 pass the default CPU budget. The benchmark
// (bench_test.go, `make bench`) runs at the seed incident's size for a 2-core box instead.
var nodes = 12

func TestMain(m *testing.M) {
	flag.Parse()
	opts := labtest.Options{Nodes: nodes, PodsPerNode: 40, Services: 4}
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		nodes = benchNodes
		opts = labtest.Options{Nodes: benchNodes, PodsPerNode: benchPodsPerNode, Services: 50, StartTimeout: 10 * time.Minute}
	}
	os.Exit(labtest.Run(m, opts, &lab))
}

// installed installs what `bulkhead install --controller` installs, once per package.
var installed bool

func install(t testing.TB, ctx context.Context) {
	t.Helper()
	if installed {
		return
	}
	if _, err := breakglass.Install(ctx, lab.Client, mustManifest(t)); err != nil {
		t.Fatalf("install break-glass: %v", err)
	}
	if _, err := controller.Install(ctx, lab.Config, "bulkhead:test"); err != nil {
		t.Fatalf("install the controller: %v", err)
	}
	installed = true
}

func mustManifest(t testing.TB) *breakglass.Manifest {
	t.Helper()
	m, err := breakglass.Desired(breakglass.InstallOptions{OperatorsGroup: breakglass.DefaultOperatorsGroup})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func dyn(t testing.TB) dynamic.Interface {
	t.Helper()
	d, err := dynamic.NewForConfig(lab.Config)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// createPolicy creates a RolloutPolicy and waits until admission acts on it: a server-side
// dry-run create of a DaemonSet in probeNamespace comes back held.
func createPolicy(t testing.TB, ctx context.Context, name string, spec map[string]any, probeNamespace string) {
	t.Helper()
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": v1alpha1.GroupVersion.String(), "kind": "RolloutPolicy",
		"metadata": map[string]any{"name": name}, "spec": spec}}
	if _, err := dyn(t).Resource(v1alpha1.Resource).Create(ctx, u, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create RolloutPolicy %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = dyn(t).Resource(v1alpha1.Resource).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	if probeNamespace == "" {
		return
	}
	namespace(t, ctx, probeNamespace, nil)
	probe := agent(probeNamespace, "probe-"+name, "agent:v1")
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		out, err := lab.Client.AppsV1().DaemonSets(probeNamespace).Create(ctx, probe.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, nil
		}
		return hold.Held(out) == hold.HeldCreate, nil
	})
	if err != nil {
		t.Fatalf("policy %s: admission never held a DaemonSet in %s: %v", name, probeNamespace, err)
	}
}

func namespace(t testing.TB, ctx context.Context, name string, labels map[string]string) {
	t.Helper()
	_, err := lab.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	_, err = lab.Client.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "agent"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create service account %s/agent: %v", name, err)
	}
}

// agent is a plain DaemonSet as a user (or a GitOps tool) would write it.
func agent(ns, name, image string) *appsv1.DaemonSet {
	ds := labtest.AgentDaemonSet(ns, name, image, "")
	ds.Spec.Template.Spec.ServiceAccountName = "agent"
	return ds
}

// podsByNode maps node → pod UID of a DaemonSet's live pods.
func podsByNode(t testing.TB, ctx context.Context, ds *appsv1.DaemonSet) map[string]string {
	t.Helper()
	pods, err := lab.Client.CoreV1().Pods(ds.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + ds.Name})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	out := map[string]string{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out[p.Spec.NodeName] = string(p.UID)
		}
	}
	return out
}

// settled waits until the DaemonSet controller has acted on the DaemonSet's latest generation
// and returns it.
func settled(t testing.TB, ctx context.Context, ns, name string) *appsv1.DaemonSet {
	t.Helper()
	var ds *appsv1.DaemonSet
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		ds, err = lab.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && ds.Status.ObservedGeneration >= ds.Generation, nil
	})
	if err != nil {
		t.Fatalf("DaemonSet %s/%s never observed by the DaemonSet controller: %v", ns, name, err)
	}
	return ds
}

// stableResourceVersion waits until the DaemonSet controller has acted on the DaemonSet and
// its resourceVersion has not moved for two seconds, and returns it.
func stableResourceVersion(t testing.TB, ctx context.Context, ns, name string) string {
	t.Helper()
	last, since := "", time.Now()
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		rv := settled(t, ctx, ns, name).ResourceVersion
		if rv != last {
			last, since = rv, time.Now()
		}
		return time.Since(since) >= 2*time.Second, nil
	})
	if err != nil {
		t.Fatalf("%s/%s never stopped changing: %v", ns, name, err)
	}
	return last
}

// waitPods waits until the DaemonSet runs exactly want pods.
func waitPods(t testing.TB, ctx context.Context, ds *appsv1.DaemonSet, want int) map[string]string {
	t.Helper()
	var got map[string]string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		got = podsByNode(t, ctx, ds)
		return len(got) == want, nil
	})
	if err != nil {
		t.Fatalf("%s/%s has %d pods, want %d: %v", ds.Namespace, ds.Name, len(got), want, err)
	}
	return got
}

func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

func describe(ds *appsv1.DaemonSet) string {
	return fmt.Sprintf("strategy %s, held %q, affinity %+v", ds.Spec.UpdateStrategy.Type, hold.Held(ds), ds.Spec.Template.Spec.Affinity)
}
