// Package e2e checks controlplane and `bulkhead top` against the lab's real kube-apiserver with
// emulated agents (pods whose lab.bulkhead.dev/behavior annotation the lab turns into API calls
// made as the pod's service account).
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/internal/cli"
	"github.com/bulkhead-dev/bulkhead/internal/labtest"
)

var lab *labtest.Lab

func TestMain(m *testing.M) {
	os.Exit(labtest.Run(m, labtest.Options{Nodes: 20, PodsPerNode: 5, Services: 20}, &lab))
}

const agentNamespace = "e2e-agents"

// runTop runs `bulkhead top args...` in-process against the lab and returns its output and error.
func runTop(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runTopOn(t, lab, args...)
}

// runTopOn runs `bulkhead top args...` in-process against l.
func runTopOn(t *testing.T, l *labtest.Lab, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := cli.NewRootCommand(&out, &errOut)
	root.SetArgs(append([]string{"--kubeconfig", l.Kubeconfig, "top"}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// startAgent runs replicas pods of an agent with its own service account, allowed to read pods
// and configmaps, and its own FlowSchema (the default service-accounts schema lumps all service
// accounts together) sending it to priorityLevel.
func startAgent(t *testing.T, name string, replicas int32, behavior, priorityLevel string) {
	t.Helper()
	ctx := context.Background()
	c := lab.Client
	must(t, ignoreResult(c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: agentNamespace}}, metav1.CreateOptions{})))
	must(t, ignoreResult(c.CoreV1().ServiceAccounts(agentNamespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})))
	must(t, ignoreResult(c.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-agent-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods", "configmaps"}, Verbs: []string{"get", "list", "watch"}}},
	}, metav1.CreateOptions{})))
	must(t, ignoreResult(c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-agent-reader-" + name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "e2e-agent-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: agentNamespace}},
	}, metav1.CreateOptions{})))
	must(t, ignoreResult(c.FlowcontrolV1().FlowSchemas().Create(ctx, &flowcontrolv1.FlowSchema{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-" + name},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: priorityLevel},
			MatchingPrecedence:         1000,
			DistinguisherMethod:        &flowcontrolv1.FlowDistinguisherMethod{Type: flowcontrolv1.FlowDistinguisherMethodByUserType},
			Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
				Subjects: []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindServiceAccount, ServiceAccount: &flowcontrolv1.ServiceAccountSubject{Name: name, Namespace: agentNamespace}}},
				ResourceRules: []flowcontrolv1.ResourcePolicyRule{{
					Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, Namespaces: []string{"*"}, ClusterScope: true,
				}},
			}},
		},
	}, metav1.CreateOptions{})))
	labels := map[string]string{"app": name}
	must(t, ignoreResult(c.AppsV1().Deployments(agentNamespace).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"lab.bulkhead.dev/behavior": behavior}},
				Spec: corev1.PodSpec{
					ServiceAccountName: name,
					Containers:         []corev1.Container{{Name: "agent", Image: "agent"}},
				},
			},
		},
	}, metav1.CreateOptions{})))
	err := wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := c.CoreV1().Pods(agentNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			return false, nil
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return running == int(replicas), nil
	})
	if err != nil {
		t.Fatalf("agent %s: %d pods not Running: %v", name, replicas, err)
	}
}

func ignoreResult[T any](_ T, err error) error { return err }

func flow(t *testing.T, r controlplane.Reading, flowSchema string) controlplane.FlowLoad {
	t.Helper()
	for _, f := range r.Flows {
		if f.FlowSchema == flowSchema {
			return f
		}
	}
	t.Fatalf("flow schema %s not in the reading: %+v", flowSchema, r.Flows)
	return controlplane.FlowLoad{}
}

func TestAgentShowsUpAsItsOwnFlowWithTheRequestsItMade(t *testing.T) {
	// 5 pods × 1 request/s each. One LISTs every pod in the cluster, the other GETs one ConfigMap.
	ctx := context.Background()
	_, err := lab.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "e2e-target"}}, metav1.CreateOptions{})
	must(t, err)
	const replicas = 5
	startAgent(t, "lister", replicas, "- list: pods\n  every: 1s\n", "workload-low")
	startAgent(t, "getter", replicas, "- get: configmaps/default/e2e-target\n  every: 1s\n", "workload-low")
	waitFlowSchemaInUse(t, "e2e-lister")
	waitFlowSchemaInUse(t, "e2e-getter")

	// The emulator's own counts bracket top's window: what top reports must be what the agents did.
	bracketStart := time.Now()
	before, err := lab.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, err := runTop(t, "--once", "-o", "json", "--interval", "20s")
	if err != nil {
		t.Fatalf("top --once: %v\n%s", err, out)
	}
	after := lab.RequireAgentsSucceeded(ctx, t, before, agentNamespace+"/lister", agentNamespace+"/getter")
	bracket := time.Since(bracketStart)
	var r controlplane.Reading
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("top -o json is not a Reading: %v\n%s", err, out)
	}
	lister, getter := flow(t, r, "e2e-lister"), flow(t, r, "e2e-getter")
	for _, f := range []controlplane.FlowLoad{lister, getter} {
		sa := agentNamespace + "/" + strings.TrimPrefix(f.FlowSchema, "e2e-")
		made := after.Agent(sa).Requests - before.Agent(sa).Requests
		seen := int64(math.Round(f.DispatchedPerSecond * r.Window.Seconds))
		// The bracket holds top's window and two edges. In the edges (plus one response time,
		// since the emulator records a request when its answer is read) an agent starts at most
		// one request per 0.9 s (1 s − 10% jitter) and one more at each edge's start; at the end,
		// it may have one request that top counted but the emulator has not recorded yet.
		edge := bracket.Seconds() - r.Window.Seconds + maxLatency(after, sa)
		lo, hi := made-2*replicas-int64(math.Ceil(replicas*edge/0.9)), made+replicas
		t.Logf("flow %s: top saw %d requests in %.1fs; the agents made %d in the %.1fs around it (bounds %d to %d)",
			f.FlowSchema, seen, r.Window.Seconds, made, bracket.Seconds(), lo, hi)
		if f.PriorityLevel != "workload-low" || seen < lo || seen > hi {
			t.Errorf("flow %s: top saw %d requests (%.2f/s over %.1fs) in %s; the agents made %d in the %.1fs around it, so want %d to %d in workload-low",
				f.FlowSchema, seen, f.DispatchedPerSecond, r.Window.Seconds, f.PriorityLevel, made, bracket.Seconds(), lo, hi)
		}
	}
	if lister.SeatSecondsPerSecond <= getter.SeatSecondsPerSecond {
		t.Errorf("seat-seconds/s: cluster-wide LIST %.4f, GET %.4f; the LIST should cost more", lister.SeatSecondsPerSecond, getter.SeatSecondsPerSecond)
	}
	t.Logf("lister %.2f req/s %.4f seat-s/s (%.1f seats avg); getter %.2f req/s %.4f seat-s/s (%.1f seats avg)",
		lister.DispatchedPerSecond, lister.SeatSecondsPerSecond, lister.AverageSeats, getter.DispatchedPerSecond, getter.SeatSecondsPerSecond, getter.AverageSeats)
}

// maxLatency is the slowest answer any action of the service account got, in seconds.
func maxLatency(st labtest.Stats, serviceAccount string) float64 {
	var most float64
	for _, a := range st {
		if a.ServiceAccount == serviceAccount {
			most = max(most, a.Max)
		}
	}
	return most
}

// waitFlowSchemaInUse waits until APF classifies requests by the flow schema: its configuration
// controller writes the schema's Dangling condition once it has taken the schema up.
func waitFlowSchemaInUse(t *testing.T, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		fs, err := lab.Client.FlowcontrolV1().FlowSchemas().Get(ctx, name, metav1.GetOptions{})
		return err == nil && len(fs.Status.Conditions) > 0, nil
	})
	if err != nil {
		t.Fatalf("APF did not take up flow schema %s: %v", name, err)
	}
}

func TestRejectionsAreAttributedToTheSaturatedFlowSchema(t *testing.T) {
	ctx := context.Background()
	one, zero := int32(1), int32(0)
	_, err := lab.Client.FlowcontrolV1().PriorityLevelConfigurations().Create(ctx, &flowcontrolv1.PriorityLevelConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-tight"},
		Spec: flowcontrolv1.PriorityLevelConfigurationSpec{
			Type: flowcontrolv1.PriorityLevelEnablementLimited,
			Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{
				NominalConcurrencyShares: &one, LendablePercent: &zero, BorrowingLimitPercent: &zero,
				LimitResponse: flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeReject},
			},
		},
	}, metav1.CreateOptions{})
	must(t, err)
	// Saturated by construction, whatever the box's speed: a Reject level holds at most its
	// seats and turns away whatever arrives while they are taken, and four times as many
	// workers as seats, each sending its next request as soon as the last returns, always
	// want more than the level has. (Emulated pods, each waiting for its own schedule, did not:
	// on a fast box their LISTs finished before the next arrived and nothing was rejected.)
	startAgent(t, "flooder", 0, "", "e2e-tight")
	stopFlood := flood(t, "flooder", 4*tightSeats(t))
	defer stopFlood()
	time.Sleep(3 * time.Second)

	out, err := runTop(t, "--once", "-o", "json", "--interval", "5s")
	if err != nil {
		t.Fatalf("top --once: %v\n%s", err, out)
	}
	var r controlplane.Reading
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	flooder := flow(t, r, "e2e-flooder")
	if flooder.PriorityLevel != "e2e-tight" || flooder.RejectedPerSecond <= 0 || flooder.RejectedByReason["concurrency-limit"] <= 0 {
		t.Errorf("flooder = %+v, want concurrency-limit rejections in e2e-tight", flooder)
	}
	for _, f := range r.Flows {
		if f.FlowSchema != "e2e-flooder" && f.RejectedPerSecond > 0 {
			t.Errorf("flow %s has %.2f rejections/s; only the flooder saturates its level", f.FlowSchema, f.RejectedPerSecond)
		}
	}
	// The flooder is its level's only flow and the level can neither lend nor borrow: the
	// per-flow seat-seconds estimate must agree with APF's own integral of the level's seats.
	for _, l := range r.PriorityLevels {
		if l.PriorityLevel != "e2e-tight" {
			continue
		}
		if l.MeasuredSeatSecondsPerSecond <= 0 || math.Abs(flooder.SeatSecondsPerSecond-l.MeasuredSeatSecondsPerSecond) > 0.15*l.MeasuredSeatSecondsPerSecond {
			t.Errorf("flooder seat-seconds/s %.3f, level e2e-tight measured %.3f: want within 15%%", flooder.SeatSecondsPerSecond, l.MeasuredSeatSecondsPerSecond)
		}
		t.Logf("flooder: %.1f req/s, %.1f rejected/s, seat-seconds/s estimated %.3f, measured by APF %.3f (limit %.0f seats)",
			flooder.DispatchedPerSecond, flooder.RejectedPerSecond, flooder.SeatSecondsPerSecond, l.MeasuredSeatSecondsPerSecond, l.CurrentLimitSeats)
	}
	table, err := runTop(t, "--once", "--interval", "2s", "--sort", "rejected", "--rows", "1")
	if err != nil || !strings.Contains(table, "e2e-flooder") {
		t.Errorf("top --once --sort rejected --rows 1 does not show the flooder first (err %v):\n%s", err, table)
	}
	// Stop the flood so that later tests measure a quiet server.
	if sent, rejected := stopFlood(); sent == 0 || rejected == 0 {
		t.Errorf("the flood sent %d requests, %d of them rejected: it did not saturate the level", sent, rejected)
	}
}

// tightSeats is the seat limit the server gave priority level e2e-tight, as `top` reads it.
func tightSeats(t *testing.T) int {
	t.Helper()
	var seats float64
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, 30*time.Second, true, func(context.Context) (bool, error) {
		out, err := runTop(t, "--once", "-o", "json", "--interval", "1s")
		if err != nil {
			return false, nil
		}
		var r controlplane.Reading
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			return false, err
		}
		for _, l := range r.PriorityLevels {
			if l.PriorityLevel == "e2e-tight" {
				seats = l.NominalLimitSeats
			}
		}
		return seats > 0, nil
	})
	if err != nil {
		t.Fatalf("the seat limit of priority level e2e-tight: %v", err)
	}
	return int(seats)
}

// flood sends LISTs of every pod as the service account name from workers goroutines, each
// sending its next request as soon as the last one returned, until the returned stop is called;
// stop waits for them and says how many requests were sent and how many APF rejected (429).
func flood(t *testing.T, name string, workers int) (stop func() (sent, rejected int64)) {
	t.Helper()
	cfg := rest.CopyConfig(lab.Config)
	cfg.QPS, cfg.Burst = -1, 0 // no client-side rate limit: the server is what limits
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + agentNamespace + ":" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + agentNamespace, "system:authenticated"}}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var sent, rejected atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				// No retry: client-go would wait out each 429's Retry-After, and the flood would ebb.
				err := client.CoreV1().RESTClient().Get().Resource("pods").MaxRetries(0).Do(ctx).Error()
				sent.Add(1)
				if apierrors.IsTooManyRequests(err) {
					rejected.Add(1)
				}
			}
		})
	}
	var once sync.Once
	return func() (int64, int64) {
		once.Do(func() {
			cancel()
			wg.Wait()
		})
		return sent.Load(), rejected.Load()
	}
}

func TestStoppedAPIServerIsReportedUnreachableAndRecovers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	scraper, err := controlplane.NewScraper(lab.Config, controlplane.Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	scraper.WaitForDiscovery(ctx, 10*time.Second)
	before := scraper.Scrape(ctx)
	if before.Replicas[0].Err != nil {
		t.Fatal(before.Replicas[0].Err)
	}
	replica := before.Replicas[0].Replica

	if err := lab.Ctl(ctx, "apiserver", "stop"); err != nil {
		t.Fatal(err)
	}
	started := false
	defer func() {
		if !started {
			_ = lab.Ctl(ctx, "apiserver", "start")
		}
	}()
	down := controlplane.Analyze(before, scraper.Scrape(ctx))
	rep := down.Replicas[0]
	if rep.State != controlplane.ReplicaUnreachable || !strings.Contains(rep.Error, "replica "+replica+": unreachable") || down.Reachable() {
		t.Errorf("with the apiserver stopped: %+v, want %s unreachable with its cause", rep, replica)
	}
	out, err := runTop(t, "--once", "--interval", "1s", "--timeout", "1s")
	if err == nil || !strings.Contains(err.Error(), "could not be read") || !strings.Contains(out, "unreachable") {
		t.Errorf("top --once with the apiserver down: err %v, output:\n%s\nwant a non-zero exit naming the unreachable replica", err, out)
	}

	if err := lab.Ctl(ctx, "apiserver", "start"); err != nil {
		t.Fatal(err)
	}
	started = true
	var back controlplane.Snapshot
	err = wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
		back = scraper.Scrape(ctx)
		return back.Replicas[0].Err == nil, nil
	})
	if err != nil {
		t.Fatalf("replica never came back: %v", back.Replicas[0].Err)
	}
	if state := controlplane.Analyze(before, back).Replicas[0].State; state != controlplane.ReplicaRestarted {
		t.Errorf("across the restart the replica is %s, want restarted", state)
	}
	time.Sleep(time.Second)
	if state := controlplane.Analyze(back, scraper.Scrape(ctx)).Replicas[0].State; state != controlplane.ReplicaOK {
		t.Errorf("after recovery the replica is %s, want ok", state)
	}
}

func TestForbiddenMetricsNameTheReplicaAndTheRBACThatIsMissing(t *testing.T) {
	ctx := context.Background()
	must(t, ignoreResult(lab.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bulkhead"}}, metav1.CreateOptions{})))
	must(t, ignoreResult(lab.Client.CoreV1().ServiceAccounts("bulkhead").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "bulkhead-observer"}}, metav1.CreateOptions{})))
	observer := rest.CopyConfig(lab.Config)
	observer.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:bulkhead:bulkhead-observer",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:bulkhead", "system:authenticated"},
	}

	scraper, err := controlplane.NewScraper(observer, controlplane.Options{Timeout: 5 * time.Second, NoDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	got := scraper.Scrape(ctx).Replicas[0]
	for _, want := range []string{"replica " + got.Replica + ":", "403 Forbidden", "nonResourceURLs /metrics", "deploy/observe/clusterrole.yaml"} {
		if got.Err == nil || !strings.Contains(got.Err.Error(), want) {
			t.Errorf("scrape without RBAC: error %v, want it to contain %q", got.Err, want)
		}
	}

	// Without list/watch on EndpointSlices discovery gives up and says why; the kubeconfig's
	// server is still scraped.
	noRBACCtx, stopNoRBAC := context.WithCancel(ctx)
	blind, err := controlplane.NewScraper(observer, controlplane.Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if blind.WaitForDiscovery(noRBACCtx, 3*time.Second) || blind.DiscoveryError() == nil || !strings.Contains(blind.DiscoveryError().Error(), "forbidden") {
		t.Errorf("discovery without RBAC: error %v, want a forbidden watch", blind.DiscoveryError())
	}
	if got := blind.Replicas(); len(got) != 1 || got[0] != strings.TrimPrefix(lab.Config.Host, "https://") {
		t.Errorf("without discovery the replicas are %v, want the kubeconfig's server", got)
	}
	stopNoRBAC()

	applyObserveRBAC(t)
	scraper, err = controlplane.NewScraper(observer, controlplane.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	if !scraper.WaitForDiscovery(watchCtx, 10*time.Second) {
		t.Error("with deploy/observe/clusterrole.yaml the observer cannot list and watch EndpointSlices in default")
	}
	err = wait.PollUntilContextTimeout(ctx, time.Second, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got = scraper.Scrape(ctx).Replicas[0]
		return got.Err == nil, nil // RBAC caches take a moment to see new bindings
	})
	if err != nil {
		t.Errorf("with deploy/observe/clusterrole.yaml the scrape still fails: %v", got.Err)
	}
}

// applyObserveRBAC creates the objects of deploy/observe/clusterrole.yaml.
func applyObserveRBAC(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	raw, err := os.ReadFile("../../deploy/observe/clusterrole.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i, doc := range strings.Split(string(raw), "\n---\n") {
		var meta metav1.TypeMeta
		if err := yamlToJSON(doc, &meta); err != nil {
			t.Fatalf("document %d: %v", i+1, err)
		}
		switch meta.Kind {
		case "ClusterRole":
			var o rbacv1.ClusterRole
			must(t, yamlToJSON(doc, &o))
			must(t, ignoreResult(lab.Client.RbacV1().ClusterRoles().Create(ctx, &o, metav1.CreateOptions{})))
		case "ClusterRoleBinding":
			var o rbacv1.ClusterRoleBinding
			must(t, yamlToJSON(doc, &o))
			must(t, ignoreResult(lab.Client.RbacV1().ClusterRoleBindings().Create(ctx, &o, metav1.CreateOptions{})))
		case "Role":
			var o rbacv1.Role
			must(t, yamlToJSON(doc, &o))
			must(t, ignoreResult(lab.Client.RbacV1().Roles(o.Namespace).Create(ctx, &o, metav1.CreateOptions{})))
		case "RoleBinding":
			var o rbacv1.RoleBinding
			must(t, yamlToJSON(doc, &o))
			must(t, ignoreResult(lab.Client.RbacV1().RoleBindings(o.Namespace).Create(ctx, &o, metav1.CreateOptions{})))
		default:
			t.Fatalf("document %d: unexpected kind %q", i+1, meta.Kind)
		}
	}
}

func yamlToJSON(doc string, into any) error {
	data, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		return fmt.Errorf("YAML: %w", err)
	}
	return json.Unmarshal(data, into)
}

func TestRequestsBulkheadAddsToTheAPIServer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	must(t, ignoreResult(lab.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bulkhead"}}, metav1.CreateOptions{})))
	must(t, ignoreResult(lab.Client.CoreV1().ServiceAccounts("bulkhead").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "bulkhead-observer"}}, metav1.CreateOptions{})))
	applyObserveRBAC(t)
	// Its own FlowSchema makes the observer's requests countable.
	must(t, ignoreResult(lab.Client.FlowcontrolV1().FlowSchemas().Create(ctx, &flowcontrolv1.FlowSchema{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-observer"},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: "workload-low"},
			MatchingPrecedence:         1000,
			Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
				Subjects:         []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindServiceAccount, ServiceAccount: &flowcontrolv1.ServiceAccountSubject{Name: "bulkhead-observer", Namespace: "bulkhead"}}},
				ResourceRules:    []flowcontrolv1.ResourcePolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, Namespaces: []string{"*"}, ClusterScope: true}},
				NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
			}},
		},
	}, metav1.CreateOptions{})))
	time.Sleep(2 * time.Second) // APF's configuration controller picks the new schema up

	admin, err := controlplane.NewScraper(lab.Config, controlplane.Options{NoDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	observer := rest.CopyConfig(lab.Config)
	observer.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:bulkhead:bulkhead-observer",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:bulkhead", "system:authenticated"},
	}
	before := admin.Scrape(ctx)
	watched, stopWatching := context.WithCancel(ctx)
	scraper, err := controlplane.NewScraper(observer, controlplane.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !scraper.WaitForDiscovery(watched, 10*time.Second) {
		t.Fatal("the observer's EndpointSlice watch did not sync")
	}
	const scrapes = 10
	for range scrapes {
		if rep := scraper.Scrape(ctx).Replicas[0]; rep.Err != nil {
			t.Fatal(rep.Err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	stopWatching()
	r := controlplane.Analyze(before, admin.Scrape(ctx))
	requests := math.Round(flow(t, r, "e2e-observer").DispatchedPerSecond * r.Window.Seconds)
	// One GET /metrics per scrape, and discovery: a single streaming WATCH of EndpointSlices
	// (client-go's WatchList, measured here) or a LIST and a WATCH; never a LIST per scrape.
	if discovery := requests - scrapes; discovery < 1 || discovery > 2 {
		t.Errorf("the observer made %.0f requests for %d scrapes, want %d GETs and 1 or 2 for discovery", requests, scrapes, scrapes)
	}
	t.Logf("requests for %d scrapes of 1 replica: %.0f; so `bulkhead top` adds 60/interval GET /metrics per replica per minute (30 at 2 s) and one long-running watch", scrapes, requests)
}

func TestTopRefusesBadFlagsBeforeTouchingTheCluster(t *testing.T) {
	cases := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--once", "-o", "yaml"}, `unknown output "yaml": want table or json`},
		{[]string{"-o", "json"}, "-o json needs --once"},
		{[]string{"--once", "--sort", "cpu"}, `unknown sort key "cpu": want one of seats, rps, rejected, wait, queued, name`},
		{[]string{"--once", "--interval", "0s"}, "--interval and --window must be positive"},
		{[]string{"--once", "--prometheus", "prometheus:9090"}, `prometheus URL "prometheus:9090": want http(s)://`},
	}
	for _, c := range cases {
		out, err := runTop(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.wantErr) || out != "" {
			t.Errorf("top %s: err %v, output %q; want error %q and no output", strings.Join(c.args, " "), err, out, c.wantErr)
		}
	}
}
