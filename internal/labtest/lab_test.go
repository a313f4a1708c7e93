package labtest_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/bulkhead-dev/bulkhead/internal/labtest"
)

// The acceptance size of the lab: 200 nodes with the default filler workload.
const (
	labNodes       = 200
	labPodsPerNode = 10
	labServices    = 50
)

var lab *labtest.Lab

func TestMain(m *testing.M) {
	os.Exit(labtest.Run(m, labtest.Options{Nodes: labNodes, PodsPerNode: labPodsPerNode, Services: labServices}, &lab))
}

func TestEveryNodeIsReadyWithItsOwnPodCIDR(t *testing.T) {
	nodes, err := lab.Client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != labNodes {
		t.Fatalf("got %d nodes, want %d", len(nodes.Items), labNodes)
	}
	cidrs := map[string]string{}
	for _, n := range nodes.Items {
		if !nodeReady(&n) {
			t.Errorf("node %s is not Ready", n.Name)
		}
		if other, dup := cidrs[n.Spec.PodCIDR]; dup || n.Spec.PodCIDR == "" {
			t.Errorf("node %s pod CIDR %q is empty or shared with %s", n.Name, n.Spec.PodCIDR, other)
		}
		cidrs[n.Spec.PodCIDR] = n.Name
	}
}

func TestDaemonSetReachesEveryNode(t *testing.T) {
	ctx := context.Background()
	ns := createNamespace(t, "ds-test")
	labels := map[string]string{"app": "node-agent"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "node-agent", Namespace: ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "example.invalid/agent:1"}}},
			},
		},
	}
	if _, err := lab.Client.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var last appsv1.DaemonSetStatus
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		got, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, ds.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = got.Status
		return got.Status.NumberReady == labNodes, nil
	})
	if err != nil {
		t.Fatalf("DaemonSet not Ready on all %d nodes: %v (last status %+v)", labNodes, err, last)
	}
}

func TestServicesHaveEndpointSlicesWithPodIPs(t *testing.T) {
	ctx := context.Background()
	slices, err := lab.Client.DiscoveryV1().EndpointSlices("lab").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	podNet := netip.MustParsePrefix("10.128.0.0/9")
	readyByService := map[string]int{}
	for _, s := range slices.Items {
		svc := s.Labels["kubernetes.io/service-name"]
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || !*e.Conditions.Ready {
				continue
			}
			for _, a := range e.Addresses {
				ip, err := netip.ParseAddr(a)
				if err != nil || !podNet.Contains(ip) {
					t.Errorf("service %s endpoint %q is not a pod IP in %s", svc, a, podNet)
				}
			}
			readyByService[svc]++
		}
	}
	perService := labNodes * labPodsPerNode / labServices
	for i := 0; i < labServices; i++ {
		name := fmt.Sprintf("svc-%03d", i)
		if readyByService[name] != perService {
			t.Errorf("service %s has %d ready endpoints, want %d", name, readyByService[name], perService)
		}
	}
}

func TestAgentsRequestsSucceedAndAPFCountsEachOfThem(t *testing.T) {
	ctx := context.Background()
	ns := createNamespace(t, "agent-rate")
	const replicas, flow, sa = 10, "labtest-agent-rate", "agent"
	grantGetConfigMaps(t, ns, sa)
	createFlowSchema(t, flow, ns, sa)
	if _, err := lab.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "target"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Each agent GETs once a second, jittered by ±10%.
	runAgents(t, ns, sa, replicas, fmt.Sprintf("- get: configmaps/%s/target\n  every: 1s\n", ns))
	before, err := lab.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	from := time.Now()
	time.Sleep(10 * time.Second)
	after := lab.RequireAgentsSucceeded(ctx, t, before, ns+"/"+sa)
	window := time.Since(from)
	// No agent starts its next request sooner than 0.9 s after its last one began: whatever the
	// box's load, the agents cannot exceed that; a slow box only makes them slower.
	made := after.Agent(ns+"/"+sa).Requests - before.Agent(ns+"/"+sa).Requests
	if most := replicas * (int64(window/(900*time.Millisecond)) + 2); made > most {
		t.Errorf("%d agents made %d requests in %s, more than their schedule allows (%d)", replicas, made, window.Round(time.Millisecond), most)
	}

	// Stop the agents, then compare the emulator's count with APF's: every request the emulator
	// recorded was dispatched under the agents' flow schema, and APF dispatched no more than that
	// plus one request per agent cancelled in flight when its pod went away.
	stopAgents(t, ns, sa)
	recorded, err := lab.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := dispatched(t, flow)
	recordedLater, err := lab.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := recorded.Agent(ns+"/"+sa).Requests, recordedLater.Agent(ns+"/"+sa).Requests+replicas
	if n < float64(lo) || n > float64(hi) {
		t.Fatalf("APF dispatched %.0f requests under %s; the emulator made %d (want %d to %d)", n, flow, lo, lo, hi)
	}
	t.Logf("%d agents: %d requests in %s (%.2f/s for a schedule of %d/s; `make bench` prints the rate), APF dispatched %.0f of the emulator's %d in all",
		replicas, made, window.Round(time.Millisecond), float64(made)/window.Seconds(), replicas, n, lo)
}

func TestMalformedBehaviourGetsAnEventAndNoTraffic(t *testing.T) {
	ctx := context.Background()
	ns := createNamespace(t, "agent-bad")
	const flow = "labtest-agent-bad"
	grantGetConfigMaps(t, ns, "bad")
	createFlowSchema(t, flow, ns, "bad")
	runAgents(t, ns, "bad", 1, "- list: pods\n  every: never\n")

	var event *corev1.Event
	err := wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
		events, err := lab.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=InvalidBehavior"})
		if err != nil || len(events.Items) == 0 {
			return false, err
		}
		event = &events.Items[0]
		return true, nil
	})
	if err != nil {
		t.Fatalf("no InvalidBehavior event: %v", err)
	}
	if !strings.Contains(event.Message, "every:") || event.InvolvedObject.Kind != "Pod" {
		t.Errorf("event does not name the pod's bad field: %+v", event)
	}
	time.Sleep(5 * time.Second)
	if n := dispatched(t, flow); n != 0 {
		t.Fatalf("the malformed agent made %v requests, want none", n)
	}
	stats, err := lab.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if made := stats.Agent(ns + "/bad"); made.Requests != 0 {
		t.Fatalf("the lab's emulator counts %d requests of the malformed agent, want none", made.Requests)
	}
}

func TestUpRejectsBadInputAndStartsNothing(t *testing.T) {
	bin, err := labtest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := fmt.Sprint(busy.Addr().(*net.TCPAddr).Port)
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown flag", []string{"--nodez", "3"}, "unknown flag: --nodez"},
		{"zero nodes", []string{"--nodes", "0"}, "--nodes must be at least 1, got 0"},
		{"negative nodes", []string{"--nodes", "-5"}, "--nodes must be at least 1, got -5"},
		{"dir under a file", []string{"--dir", filepath.Join(notADir, "lab")}, "--dir " + filepath.Join(notADir, "lab")},
		{"port in use", []string{"--port", busyPort}, "port " + busyPort + " on 127.0.0.1 is not available"},
		{"no apiserver", []string{"--apiservers", "0"}, "--apiservers must be between 1 and 9, got 0"},
		{"missing prometheus", []string{"--prometheus", notADir + ".absent"}, "--prometheus " + notADir + ".absent: stat"},
		{"prometheus not executable", []string{"--prometheus", notADir}, "--prometheus " + notADir + " is not an executable file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "lab")
			args := append([]string{"up", "--dir", dir, "--nodes", "3"}, tc.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Stderr = &stderr
			err := cmd.Run()
			if err == nil || ctx.Err() != nil {
				t.Fatalf("up %v: err %v (timeout: %v), want a quick failure", tc.args, err, ctx.Err())
			}
			if !strings.Contains(stderr.String(), tc.wantErr) {
				t.Fatalf("up %v: stderr %q, want it to name %q", tc.args, stderr.String(), tc.wantErr)
			}
			for _, started := range []string{"etcd", "pki", "ctl.sock", "kubeconfig", "prometheus"} {
				if _, err := os.Stat(filepath.Join(dir, started)); err == nil {
					t.Errorf("up %v left %s behind in %s", tc.args, started, dir)
				}
			}
		})
	}
}

func TestSIGTERMLeavesNothingAndUpWorksAgainInTheSameDir(t *testing.T) {
	dir := t.TempDir()
	for run := 1; run <= 2; run++ {
		small, err := labtest.StartIn(dir, labtest.Options{Nodes: 3, PodsPerNode: 2, Services: 2})
		if err != nil {
			t.Fatalf("up #%d in %s: %v", run, dir, err)
		}
		st, err := small.Status(context.Background())
		if err != nil {
			small.Close()
			t.Fatal(err)
		}
		if err := small.Close(); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		pids := []int{st.SupervisorPID}
		for _, pid := range st.ComponentPIDs {
			pids = append(pids, pid)
		}
		for _, pid := range pids {
			if pid == 0 || syscall.Kill(pid, 0) == nil {
				t.Errorf("run %d: process %d is still alive after SIGTERM (status %+v)", run, pid, st)
			}
		}
		host := strings.TrimPrefix(st.Server, "https://")
		if conn, err := net.DialTimeout("tcp", host, time.Second); err == nil {
			conn.Close()
			t.Errorf("run %d: %s still accepts connections after SIGTERM", run, host)
		}
		if _, err := os.Stat(filepath.Join(dir, "ctl.sock")); err == nil {
			t.Errorf("run %d: control socket left behind", run)
		}
	}
}

// Last: it takes the shared lab's apiserver down.
func TestAPIServerStopAndStartKeepEveryObject(t *testing.T) {
	ctx := context.Background()
	ns := createNamespace(t, "fault")
	before, err := lab.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "survivor"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.Ctl(ctx, "apiserver", "stop"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err = lab.Client.CoreV1().ConfigMaps(ns).Get(short, "survivor", metav1.GetOptions{})
	cancel()
	if err == nil {
		t.Fatal("the API answered while stopped")
	}
	if err := lab.Ctl(ctx, "apiserver", "start"); err != nil {
		t.Fatal(err)
	}
	after, err := lab.Client.CoreV1().ConfigMaps(ns).Get(ctx, "survivor", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("after start: %v", err)
	}
	if after.UID != before.UID || after.Data["k"] != "v" {
		t.Fatalf("object changed across the restart: before %v/%v, after %v/%v", before.UID, before.Data, after.UID, after.Data)
	}
	nodes, err := lab.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) != labNodes {
		t.Fatalf("after start: %d nodes, err %v; want %d", len(nodes.Items), err, labNodes)
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func createNamespace(t testing.TB, name string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := lab.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = lab.Client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

func grantGetConfigMaps(t testing.TB, ns, sa string) {
	t.Helper()
	ctx := context.Background()
	c := lab.Client
	must(t, create(c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})))
	must(t, create(c.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "get-configmaps"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{})))
	must(t, create(c.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: sa + "-get-configmaps"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "get-configmaps"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}},
	}, metav1.CreateOptions{})))
}

// createFlowSchema gives one service account a flow schema of its own, so that APF's metrics
// count its requests alone.
func createFlowSchema(t testing.TB, name, ns, sa string) {
	t.Helper()
	fs := &flowcontrolv1.FlowSchema{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: "workload-low"},
			MatchingPrecedence:         500,
			DistinguisherMethod:        &flowcontrolv1.FlowDistinguisherMethod{Type: flowcontrolv1.FlowDistinguisherMethodByUserType},
			Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
				Subjects: []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindServiceAccount, ServiceAccount: &flowcontrolv1.ServiceAccountSubject{Namespace: ns, Name: sa}}},
				ResourceRules: []flowcontrolv1.ResourcePolicyRule{{
					Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, ClusterScope: true, Namespaces: []string{"*"},
				}},
			}},
		},
	}
	if _, err := lab.Client.FlowcontrolV1().FlowSchemas().Create(context.Background(), fs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = lab.Client.FlowcontrolV1().FlowSchemas().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	// APF's configuration controller writes the schema's Dangling condition once it classifies
	// requests by it: from then on the agents' requests are counted under name.
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		got, err := lab.Client.FlowcontrolV1().FlowSchemas().Get(ctx, name, metav1.GetOptions{})
		return err == nil && len(got.Status.Conditions) > 0, err
	})
	if err != nil {
		t.Fatalf("APF did not take up flow schema %s: %v", name, err)
	}
}

// runAgents creates a Deployment of agents with the behaviour and waits until they run.
func runAgents(t testing.TB, ns, sa string, replicas int32, behaviour string) {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app": sa}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"lab.bulkhead.dev/behavior": behaviour}},
				Spec:       corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "agent", Image: "example.invalid/agent:1"}}},
			},
		},
	}
	if _, err := lab.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		got, err := lab.Client.AppsV1().Deployments(ns).Get(ctx, sa, metav1.GetOptions{})
		return err == nil && got.Status.ReadyReplicas == replicas, err
	})
	if err != nil {
		t.Fatalf("agents %s/%s not running: %v", ns, sa, err)
	}
}

// stopAgents deletes the agents' Deployment and waits until their pods are gone, and with them
// the emulator's traffic.
func stopAgents(t testing.TB, ns, sa string) {
	t.Helper()
	ctx := context.Background()
	background := metav1.DeletePropagationBackground
	if err := lab.Client.AppsV1().Deployments(ns).Delete(ctx, sa, metav1.DeleteOptions{PropagationPolicy: &background}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := lab.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + sa})
		return err == nil && len(pods.Items) == 0, err
	})
	if err != nil {
		t.Fatalf("agents %s/%s still have pods: %v", ns, sa, err)
	}
}

func create[T any](_ T, err error) error {
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// dispatched reads apiserver_flowcontrol_dispatched_requests_total for one flow schema.
func dispatched(t testing.TB, flowSchema string) float64 {
	t.Helper()
	n, err := lab.FlowCounter(context.Background(), "apiserver_flowcontrol_dispatched_requests_total", flowSchema)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
