package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/bulkhead-dev/bulkhead/apf"
	"github.com/bulkhead-dev/bulkhead/breakglass"
	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/internal/cli"
)

// run executes a bulkhead command in-process against the lab, as the lab's admin plus extra
// global flags (for example --as alice --as-group bulkhead-operators).
func run(args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	root := cli.NewRootCommand(&out, &errOut)
	root.SetArgs(append([]string{"--kubeconfig", lab.Kubeconfig}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err = root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func mustRun(t testing.TB, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, err := run(args...)
	if err != nil {
		t.Fatalf("bulkhead %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout, stderr
}

// asOperator runs bulkhead as alice, a member of the operators' group but not a cluster admin.
func asOperator(args ...string) []string {
	return append([]string{"--as", "alice", "--as-group", breakglass.DefaultOperatorsGroup, "--as-group", "system:authenticated"}, args...)
}

// bulkheadObjects names every object in the lab that carries bulkhead's managed-by label,
// rollout lanes excepted, with its resourceVersion.
func bulkheadObjects(t testing.TB) map[string]string {
	t.Helper()
	ctx := context.Background()
	sel := metav1.ListOptions{LabelSelector: apf.ManagedByLabel + "=" + apf.ManagedByValue + "," + apf.PurposeLabel + "!=" + string(apf.PurposeRolloutLane)}
	c := lab.Client
	out := map[string]string{}
	add := func(kind string, err error, metas ...metav1.Object) {
		if err != nil {
			t.Fatalf("list %s: %v", kind, err)
		}
		for _, m := range metas {
			key := kind + " " + m.GetName()
			if m.GetNamespace() != "" {
				key = kind + " " + m.GetNamespace() + "/" + m.GetName()
			}
			out[key] = m.GetResourceVersion()
		}
	}
	fs, err := c.FlowcontrolV1().FlowSchemas().List(ctx, sel)
	add("FlowSchema", err, ptrs(fs.Items)...)
	pl, err := c.FlowcontrolV1().PriorityLevelConfigurations().List(ctx, sel)
	add("PriorityLevelConfiguration", err, ptrs(pl.Items)...)
	cr, err := c.RbacV1().ClusterRoles().List(ctx, sel)
	add("ClusterRole", err, ptrs(cr.Items)...)
	crb, err := c.RbacV1().ClusterRoleBindings().List(ctx, sel)
	add("ClusterRoleBinding", err, ptrs(crb.Items)...)
	roles, err := c.RbacV1().Roles("").List(ctx, sel)
	add("Role", err, ptrs(roles.Items)...)
	rbs, err := c.RbacV1().RoleBindings("").List(ctx, sel)
	add("RoleBinding", err, ptrs(rbs.Items)...)
	sas, err := c.CoreV1().ServiceAccounts("").List(ctx, sel)
	add("ServiceAccount", err, ptrs(sas.Items)...)
	nss, err := c.CoreV1().Namespaces().List(ctx, sel)
	add("Namespace", err, ptrs(nss.Items)...)
	vaps, err := c.AdmissionregistrationV1().ValidatingAdmissionPolicies().List(ctx, sel)
	add("ValidatingAdmissionPolicy", err, ptrs(vaps.Items)...)
	vapbs, err := c.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().List(ctx, sel)
	add("ValidatingAdmissionPolicyBinding", err, ptrs(vapbs.Items)...)
	return out
}

func ptrs[T any, P interface {
	*T
	metav1.Object
}](items []T) []metav1.Object {
	out := make([]metav1.Object, len(items))
	for i := range items {
		out[i] = P(&items[i])
	}
	return out
}

// breakGlassConfig mints a kubeconfig with `bulkhead breakglass kubeconfig` as an operator.
func breakGlassConfig(t testing.TB) *rest.Config {
	t.Helper()
	out, _ := mustRun(t, asOperator("breakglass", "kubeconfig", "--ttl", "1h")...)
	cfg, err := clientcmd.RESTConfigFromKubeConfig([]byte(out))
	if err != nil {
		t.Fatalf("break-glass kubeconfig does not load: %v\n%s", err, out)
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	return cfg
}

// serviceAccountConfig is the lab admin impersonating a service account, as APF sees it.
func serviceAccountConfig(ns, name string) *rest.Config {
	cfg := rest.CopyConfig(lab.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
	cfg.QPS, cfg.Burst = 1000, 1000
	return cfg
}

// createServiceAccount creates ns/name bound to clusterRole, and allowed to GET nodes (the
// probes' request).
func createServiceAccount(t testing.TB, ns, name, clusterRole string) {
	t.Helper()
	ctx := context.Background()
	c := lab.Client
	must(t, exists(c.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: nodeReader},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{})))
	must(t, exists(c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "e2e-nodes-" + ns + "-" + name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: nodeReader},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}}}, metav1.CreateOptions{})))
	must(t, lab.ServiceAccount(ctx, ns, name, clusterRole))
}

// exists treats "already exists" as success: tests share objects such as victim/agent.
func exists[T any](_ T, err error) error {
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

// startCulprit runs the acceptance culprit: a Deployment of replicas pods sharing one service
// account, each LISTing every pod in the cluster once a second (or as fast as answers come).
func startCulprit(t testing.TB, ns, sa string, replicas int32) {
	t.Helper()
	ctx := context.Background()
	createServiceAccount(t, ns, sa, "view")
	labels := map[string]string{"app": sa}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"lab.bulkhead.dev/behavior": "- list: pods\n  every: 1s\n"}},
				Spec:       corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "agent", Image: "example.invalid/telemetry:1"}}},
			},
		},
	}
	if _, err := lab.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitCulpritRunning(t, ns, sa, replicas)
}

func waitCulpritRunning(t testing.TB, ns, name string, replicas int32) {
	t.Helper()
	var last appsv1.DeploymentStatus
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		d, err := lab.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil // the admin is exempt, but a busy server may still time out: retry
		}
		last = d.Status
		return d.Status.ReadyReplicas == replicas, nil
	})
	if err != nil {
		t.Fatalf("culprit %s/%s not running: %v (status %+v)", ns, name, err, last)
	}
}

func stopCulprit(ns, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	policy := metav1.DeletePropagationBackground
	_ = lab.Client.AppsV1().Deployments(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &policy})
}

// sample is one probe request.
type sample struct {
	at      time.Time
	latency time.Duration
	err     error
}

// probe GETs one node every interval (sequentially, so a slow answer delays the next, like a
// controller's worker) until stopped.
type probe struct {
	mu      sync.Mutex
	samples []sample
	// broken is the first error that is not overload (timeout, 429, 5xx): a probe that may not
	// GET its node measures nothing.
	broken error
	stop   context.CancelFunc
	done   chan struct{}
}

const probeTimeout = 30 * time.Second

func startProbe(t testing.TB, cfg *rest.Config, interval time.Duration) *probe {
	t.Helper()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &probe{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			start := time.Now()
			reqCtx, reqCancel := context.WithTimeout(ctx, probeTimeout)
			_, err := client.CoreV1().Nodes().Get(reqCtx, "node-0000", metav1.GetOptions{})
			reqCancel()
			if ctx.Err() != nil {
				return
			}
			p.mu.Lock()
			p.samples = append(p.samples, sample{at: start, latency: time.Since(start), err: err})
			if err != nil && p.broken == nil && !overloaded(err) {
				p.broken = err
			}
			p.mu.Unlock()
		}
	}()
	return p
}

func overloaded(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || apierrors.IsTooManyRequests(err) || apierrors.IsTimeout(err) ||
		apierrors.IsServerTimeout(err) || apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err)
}

// check fails the test when the probe could not measure at all.
func (p *probe) check(t testing.TB, name string) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broken != nil {
		t.Fatalf("%s probe broken: %v", name, p.broken)
	}
}

func (p *probe) Stop() {
	p.stop()
	<-p.done
}

// between returns the latencies of requests issued in [from, to); a failed request counts as
// the probe timeout, the worst a client can see.
func (p *probe) between(from, to time.Time) (lat []time.Duration, failed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.samples {
		if s.at.Before(from) || !s.at.Before(to) {
			continue
		}
		if s.err != nil {
			failed++
			lat = append(lat, probeTimeout)
			continue
		}
		lat = append(lat, s.latency)
	}
	return lat, failed
}

// quantile is the q-quantile by the nearest-rank method.
func quantile(lat []time.Duration, q float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	rank := int(float64(len(s))*q+0.999999) - 1
	return s[max(0, min(rank, len(s)-1))]
}

// recovery is the time from t0 to the start of the first window after which every window of
// width step, until end, has a p99 under slo; ok is false when none has.
func (p *probe) recovery(t0, end time.Time, step, slo time.Duration) (time.Duration, bool) {
	var since time.Time
	for w := t0; w.Add(step).Compare(end) <= 0; w = w.Add(step) {
		lat, _ := p.between(w, w.Add(step))
		good := len(lat) > 0 && quantile(lat, 0.99) < slo
		switch {
		case good && since.IsZero():
			since = w
		case !good:
			since = time.Time{}
		}
	}
	if since.IsZero() {
		return 0, false
	}
	return since.Sub(t0), true
}

func describe(lat []time.Duration, failed int) string {
	return fmt.Sprintf("n=%d p50=%s p99=%s max=%s failed=%d", len(lat), quantile(lat, 0.5).Round(time.Millisecond),
		quantile(lat, 0.99).Round(time.Millisecond), quantile(lat, 1).Round(time.Millisecond), failed)
}

const nodeReader = "e2e-node-reader"

// mustBindNodesReader lets user GET nodes, the probe's request (after createServiceAccount made
// the role).
func mustBindNodesReader(t testing.TB, user string) {
	t.Helper()
	ctx := context.Background()
	must(t, exists(lab.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "e2e-user-" + user},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: nodeReader},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}}, metav1.CreateOptions{})))
}

// apfWindow reads the server's own APF accounting between two scrapes, for the log: what the
// culprit, the lane and the ordinary client's level held while the probes measured.
type apfWindow struct {
	scraper *controlplane.Scraper
	first   controlplane.Snapshot
}

func startAPFWindow(t testing.TB) *apfWindow {
	t.Helper()
	s, err := controlplane.NewScraper(lab.Config, controlplane.Options{NoDiscovery: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &apfWindow{scraper: s, first: s.Scrape(context.Background())}
}

func (w *apfWindow) log(t testing.TB, levels ...string) {
	t.Helper()
	r := controlplane.Analyze(w.first, w.scraper.Scrape(context.Background()))
	for _, l := range r.PriorityLevels {
		if !slices.Contains(levels, l.PriorityLevel) {
			continue
		}
		t.Logf("APF %-28s nominal %3.0f seats, current %3.0f, held %5.1f seat-s/s, dispatched %6.1f/s, rejected %6.1f/s, wait p99 %.2fs",
			l.PriorityLevel, l.NominalLimitSeats, l.CurrentLimitSeats, l.SeatSecondsPerSecond, l.DispatchedPerSecond, l.RejectedPerSecond, l.Wait.P99Seconds)
	}
	for _, f := range r.Flows {
		if strings.HasPrefix(f.FlowSchema, "bulkhead-shed-") || f.FlowSchema == "service-accounts" {
			t.Logf("APF flow %s→%s: %.1f seats per request, dispatched %.1f/s, rejected %.1f/s", f.FlowSchema, f.PriorityLevel,
				f.AverageSeats, f.DispatchedPerSecond, f.RejectedPerSecond)
		}
	}
}
