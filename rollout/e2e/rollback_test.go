package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulkhead-dev/bulkhead/breakglass"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// With break-glass installed, a rollout run by an operator whom APF queues like anyone (a
// cluster admin by RBAC, not system:masters) rolls back through the break-glass lane: the
// rollback's requests are dispatched in the bulkhead-break-glass flow schema.
func TestARollbackTravelsTheBreakGlassLane(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const ns, name = "glass", "agent"
	setup(t, ctx, ns, name)
	if out, err := bulkhead(ctx, "install"); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	installed := true
	uninstall := func() {
		if !installed {
			return
		}
		installed = false
		// Later tests size lanes against the default levels' shares.
		if out, err := bulkhead(context.Background(), "uninstall", "--wait", "2m"); err != nil {
			t.Errorf("uninstall: %v\n%s", err, out)
		}
	}
	t.Cleanup(uninstall)
	bindOperator(t, ctx)

	out, dispatched := abortedRollout(t, ctx, ns, name)
	if !strings.Contains(out, "rollback: using the break-glass lane as bulkhead/bulkhead") {
		t.Fatalf("the rollback did not say it used the break-glass lane")
	}
	// At least: squeeze (read the schema, apply the level), list and unlabel wave 1's 3 nodes,
	// watch the pods go, delete schema, level and DaemonSet.
	if dispatched < 9 {
		t.Fatalf("%v requests dispatched in the break-glass lane during the rollback, want at least 9", dispatched)
	}
	t.Logf("%v requests of the rollback dispatched in flow schema %s", dispatched, breakglass.LaneName)

	// Without break-glass, the same rollback goes ahead on the operator's own identity.
	uninstall()
	out, dispatched = abortedRollout(t, ctx, ns, name)
	if !strings.Contains(out, "rollback: NOT using the break-glass lane") || dispatched != 0 {
		t.Fatalf("without break-glass: %v requests in its lane; output:\n%s", dispatched, out)
	}
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

// abortedRollout has the operator apply a new DaemonSet, aborts it in wave 1's soak as the
// admin, and returns the operator's output and how many requests the break-glass flow schema
// dispatched meanwhile. The admin is exempt from APF: none of its requests count there.
func abortedRollout(t *testing.T, ctx context.Context, ns, name string) (string, float64) {
	t.Helper()
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := bulkhead(ctx, "--as", operator, "rollout", "apply", "-f", writeManifest(t, ns, name, "agent:v1"),
			"--waves", "25%,100%", "--soak", "5m", "--interval", "2s")
		done <- result{out, err}
	}()
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
	dispatched := lane() - before
	if _, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the rolled-back new DaemonSet still exists: %v", err)
	}
	return r.out, dispatched
}
