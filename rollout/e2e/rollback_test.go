package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/bulkhead-dev/bulkhead/breakglass"
	"github.com/bulkhead-dev/bulkhead/rollout/execute"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// With break-glass installed, a rollout run by an operator whom APF queues like anyone (a
// cluster admin by RBAC, not system:masters) rolls back through the break-glass lane: the
// rollback's requests are dispatched in the bulkhead-break-glass flow schema. Without it, the
// rollback goes ahead on the operator's own identity.
func TestARollbackTravelsTheBreakGlassLane(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const ns, name = "glass", "agent"
	setup(t, ctx, ns, name)
	uninstall := installBreakGlass(t, ctx)
	bindOperator(t, ctx)

	out, dispatched := abortedRollout(t, ctx, ns, name, "agent:v1")
	if !strings.Contains(out, "rollback: using the break-glass lane as bulkhead/bulkhead") {
		t.Fatalf("the rollback did not say it used the break-glass lane")
	}
	// At least: squeeze (read the schema, apply the level), list and unlabel wave 1's 3 nodes,
	// watch the pods go, delete schema, level and DaemonSet.
	if dispatched < 9 {
		t.Fatalf("%v requests dispatched in the break-glass lane during the rollback, want at least 9", dispatched)
	}
	t.Logf("%v requests of the rollback dispatched in flow schema %s", dispatched, breakglass.LaneName)
	if _, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the rolled-back new DaemonSet still exists: %v", err)
	}

	uninstall()
	out, dispatched = abortedRollout(t, ctx, ns, name, "agent:v1")
	if !strings.Contains(out, "rollback: NOT using the break-glass lane") || dispatched != 0 {
		t.Fatalf("without break-glass: %v requests in its lane; output:\n%s", dispatched, out)
	}
	if _, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the rolled-back new DaemonSet still exists: %v", err)
	}
}

// An update's rollback — the previous template restored, wave 1's pods replaced by old ones,
// the strategy restored — travels the break-glass lane too, and leaves the other nodes' pods
// alone.
func TestAnUpdatesRollbackRestoresTheTemplateThroughTheBreakGlassLane(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const ns, name = "glass-update", "agent"
	setup(t, ctx, ns, name)
	installBreakGlass(t, ctx)
	bindOperator(t, ctx)

	v1, err := execute.ParseManifest([]byte(strings.NewReplacer("NAME", name, "NS", ns, "IMAGE", "agent:v1").Replace(manifest)), ns, true)
	if err != nil {
		t.Fatalf("ParseManifest: %v", err)
	}
	if _, err := lab.Client.AppsV1().DaemonSets(ns).Create(ctx, v1, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create v1: %v", err)
	}
	var original string
	if err := wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		ds, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || ds.Status.NumberReady != nodes || ds.Status.UpdatedNumberScheduled != nodes {
			return false, nil
		}
		_, original, err = execute.CurrentRevision(ctx, lab.Client, ns, name)
		return err == nil, nil
	}); err != nil {
		t.Fatalf("v1 never ran on all %d nodes: %v", nodes, err)
	}
	before := podsAt(t, ctx, ns, name, original)

	out, dispatched := abortedRollout(t, ctx, ns, name, "agent:v2")
	if !strings.Contains(out, "rollback: using the break-glass lane as bulkhead/bulkhead") {
		t.Fatalf("the rollback did not say it used the break-glass lane")
	}
	// At least: squeeze (2), the DaemonSet and its revisions, the template patch, its pods,
	// wave 1's 3 pod deletions, the strategy, schema and level deleted, the state saved.
	if dispatched < 12 {
		t.Fatalf("%v requests dispatched in the break-glass lane during the rollback, want at least 12", dispatched)
	}
	t.Logf("%v requests of the update's rollback dispatched in flow schema %s", dispatched, breakglass.LaneName)

	ds, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if img := ds.Spec.Template.Spec.Containers[0].Image; img != "agent:v1" || ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
		t.Fatalf("after the rollback: image %s, strategy %s; want agent:v1 and RollingUpdate", img, ds.Spec.UpdateStrategy.Type)
	}
	if _, st, err := execute.Load(ctx, lab.Client, ns, name); err != nil || st.Phase != state.RolledBack {
		t.Fatalf("state after the rollback: %v %s", err, st.Phase)
	}
	var after map[string]string
	if err := wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
		after = podsAt(t, ctx, ns, name, original)
		return len(after) == nodes, nil
	}); err != nil {
		t.Fatalf("%d of %d nodes back on the original revision: %v", len(after), nodes, err)
	}
	replaced := 0
	for node, uid := range before {
		if after[node] != uid {
			replaced++
		}
	}
	// Wave 1 (25% of 12) was switched and switched back; no other pod was touched.
	if replaced != 3 {
		t.Fatalf("%d nodes' pods were replaced, want wave 1's 3", replaced)
	}
}

// installBreakGlass runs `bulkhead install` and uninstalls at the test's end (or sooner, by the
// returned function): later tests size lanes against the default levels' shares.
func installBreakGlass(t *testing.T, ctx context.Context) func() {
	t.Helper()
	if out, err := bulkhead(ctx, "install"); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	installed := true
	uninstall := func() {
		if !installed {
			return
		}
		installed = false
		if out, err := bulkhead(context.Background(), "uninstall", "--wait", "2m"); err != nil {
			t.Errorf("uninstall: %v\n%s", err, out)
		}
	}
	t.Cleanup(uninstall)
	return uninstall
}

// operator is a cluster admin by RBAC, not in system:masters: APF queues its requests like anyone's.
const operator = "glass-operator"

func bindOperator(t *testing.T, ctx context.Context) {
	t.Helper()
	_, err := lab.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: operator},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: operator}}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("bind the operator: %v", err)
	}
}

// abortedRollout has the operator apply the manifest with image, aborts the rollout in wave 1's
// soak as the admin, and returns the operator's output and how many requests the break-glass
// flow schema dispatched meanwhile. The admin is exempt from APF: none of its requests count
// there.
func abortedRollout(t *testing.T, ctx context.Context, ns, name, image string) (string, float64) {
	t.Helper()
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := bulkhead(ctx, "--as", operator, "rollout", "apply", "-f", writeManifest(t, ns, name, image),
			"--waves", "25%,100%", "--soak", "8s", "--interval", "2s")
		done <- result{out, err}
	}()
	// Wave 1's soak lasts at least its agents' start, 15 s of settling and three samples.
	waitPhase(t, ctx, ns, name, state.Soaking)
	lane := func() float64 {
		n, err := lab.FlowCounter(ctx, "apiserver_flowcontrol_dispatched_requests_total", breakglass.LaneName)
		if err != nil {
			t.Fatalf("read the break-glass lane's counter: %v", err)
		}
		return n
	}
	before := lane()
	// The running operator's bulkhead carries the admin's abort out.
	if out, err := bulkhead(ctx, "rollout", "abort", name, "-n", ns); err != nil {
		t.Fatalf("abort: %v\n%s", err, out)
	}
	r := <-done
	t.Log(r.out)
	if r.err == nil || !strings.Contains(r.err.Error(), "rolled back: aborted by user") {
		t.Fatalf("apply after abort: %v", r.err)
	}
	return r.out, lane() - before
}
