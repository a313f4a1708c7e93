// Package e2e runs bulkhead's break-glass lane and shed jails against the lab's real
// kube-apiserver, with a culprit that saturates it.
package e2e

import (
	"context"
	"maps"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/bulkhead-dev/bulkhead/apf"
	"github.com/bulkhead-dev/bulkhead/breakglass"
	"github.com/bulkhead-dev/bulkhead/internal/labtest"
)

// The lab: 4,500 pods (a cluster-wide pod LIST is ~22 MB) and a server of 30 seats (20 + 10
// instead of 400 + 200). workload-low, where the culprit and the ordinary client both land, gets
// 12 seats; the apiserver estimates each pod LIST (served from its watch cache) at 1 seat, so the
// culprit keeps 12 running and the rest queued, and the server is CPU-bound on 2 cores. The two
// acceptance thresholds pull against each other there: the ordinary client breaks its SLO only
// when the CPU is saturated, and then the lane's p99 depends on what else the box runs. Measured
// on a quiet box (as CI runs it): 2,000 pods left the ordinary p99 at 0.92 s (no saturation);
// 3,000 at 1.04 s; 3,500 at 0.75–1.40 s; 4,500 at 1.2–3.8 s with the lane at 51–55 ms (three
// runs). 4,000 pods on a loaded box pushed the lane to 0.6 s (README: measured).
const (
	labNodes       = 45
	labPodsPerNode = 100
	culpritPods    = 50
	slo            = time.Second
	laneSLO        = 200 * time.Millisecond
)

var lab *labtest.Lab

func TestMain(m *testing.M) {
	os.Exit(labtest.Run(m, labtest.Options{Nodes: labNodes, PodsPerNode: labPodsPerNode, Services: 10,
		ExtraArgs: []string{"--max-requests-inflight=20", "--max-mutating-requests-inflight=10"}}, &lab))
}

// installObjects is how many objects install creates: namespace, service account, two admission
// policies and their bindings, the ClusterRole and two Roles with their bindings, the lane's level
// and schema.
const installObjects = 14

func TestInstallTwiceChangesNothingTheSecondTime(t *testing.T) {
	first, _ := mustRun(t, "install")
	if strings.Count(first, " created") != installObjects {
		t.Fatalf("first install should create %d objects:\n%s", installObjects, first)
	}
	// 30 seats, Σ shares 245 + 10: ceil(30 × 10 / 255) = 2, as the server itself reports.
	if !strings.Contains(first, "break-glass lane: 2 of ") {
		t.Errorf("install did not report the lane's size from the server:\n%s", first)
	}
	// The API server writes the new FlowSchema's status (its Dangling condition) a moment after
	// the create; the second install is compared with the cluster after that.
	time.Sleep(3 * time.Second)
	installed := bulkheadObjects(t)
	second, _ := mustRun(t, "install")
	if strings.Count(second, " unchanged") != installObjects || strings.Contains(second, "created") || strings.Contains(second, "updated") {
		t.Fatalf("second install should report %d unchanged objects:\n%s", installObjects, second)
	}
	after := bulkheadObjects(t)
	for name, rv := range installed {
		if after[name] != rv {
			t.Errorf("%s changed on the second install (resourceVersion %s → %s)", name, rv, after[name])
		}
	}
	if len(after) != len(installed) {
		t.Errorf("second install changed the object set: %v → %v", installed, after)
	}

	// A new operators' group updates exactly the three objects that name it, and back.
	for _, group := range []string{"sre", breakglass.DefaultOperatorsGroup} {
		out, _ := mustRun(t, "install", "--operators-group", group)
		if strings.Count(out, " updated") != 3 || !strings.Contains(out, "FlowSchema bulkhead-break-glass updated") ||
			!strings.Contains(out, "RoleBinding bulkhead/bulkhead-break-glass-token updated") ||
			!strings.Contains(out, "ValidatingAdmissionPolicy bulkhead-break-glass updated") {
			t.Fatalf("install --operators-group %s should update the lane's schema, the token binding and the rails' policy only:\n%s", group, out)
		}
	}
}

// After TestInstallTwice…: with break-glass installed for the default group, a real install for
// another group would update three objects in place, which only their resourceVersions show.
func TestDryRunPrintsTheObjectsAndTouchesNothing(t *testing.T) {
	mustRun(t, "install") // idempotent: the test also runs alone
	// The API server writes a new FlowSchema's status (its Dangling condition) a moment after the
	// create: compare the cluster after that.
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		fs, err := lab.Client.FlowcontrolV1().FlowSchemas().Get(ctx, breakglass.LaneName, metav1.GetOptions{})
		return err == nil && len(fs.Status.Conditions) > 0, err
	})
	if err != nil {
		t.Fatalf("the lane's FlowSchema has no status: %v", err)
	}
	before := bulkheadObjects(t)
	out, _ := mustRun(t, "install", "--dry-run", "--operators-group", "sre")
	for _, want := range []string{"kind: Namespace", "kind: ServiceAccount", "kind: ClusterRole", "kind: PriorityLevelConfiguration",
		"kind: FlowSchema", "name: sre", "matchingPrecedence: 50", "kind: ValidatingAdmissionPolicy", "'sre'"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q", want)
		}
	}
	if after := bulkheadObjects(t); !maps.Equal(after, before) {
		t.Fatalf("dry-run changed the cluster (object → resourceVersion): before %v, after %v", before, after)
	}
}

func TestBadInputGetsAClearErrorAndChangesNothing(t *testing.T) {
	createServiceAccount(t, "victim", "agent", "view")
	before := bulkheadObjects(t)
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown identity format", []string{"shed", "--serviceaccount", "agent"}, `service account "agent": want namespace/name`},
		{"no identity", []string{"shed", "--reject"}, "name exactly one identity"},
		{"two identities", []string{"shed", "--user", "a", "--group", "b"}, "name exactly one identity"},
		{"system:masters", []string{"shed", "--group", "system:masters"}, "refusing to shed group system:masters: system:masters is the cluster's last-resort admin group"},
		{"system:nodes", []string{"shed", "--group", "system:nodes"}, "refusing to shed group system:nodes"},
		{"kube-system service account", []string{"shed", "--serviceaccount", "kube-system/coredns"}, "kube-system service accounts run the control plane"},
		{"bulkhead itself", []string{"shed", "--serviceaccount", "bulkhead/bulkhead"}, "it is bulkhead itself"},
		{"the operators' group", []string{"shed", "--group", breakglass.DefaultOperatorsGroup}, "operators' group"},
		{"zero ttl", []string{"shed", "--serviceaccount", "victim/agent", "--ttl", "0s"}, "--ttl 0s: a shed needs a positive lifetime"},
		{"negative ttl", []string{"shed", "--serviceaccount", "victim/agent", "--ttl", "-5m"}, "--ttl -5m0s"},
		{"limit zero", []string{"shed", "--serviceaccount", "victim/agent", "--limit", "0"}, "--limit 0"},
		{"reject and limit", []string{"shed", "--serviceaccount", "victim/agent", "--reject", "--limit", "2"}, "exclude each other"},
		{"unshed an unknown name", []string{"unshed", "bulkhead-shed-sa-nobody.here"}, `no shed named "bulkhead-shed-sa-nobody.here"`},
		{"unshed the lane", []string{"unshed", breakglass.LaneName}, "is not a shed"},
		{"token ttl under the API minimum", []string{"breakglass", "kubeconfig", "--ttl", "1m"}, "--ttl 1m0s: want 10m0s to 24h0m0s"},
		{"operators group system:masters", []string{"install", "--operators-group", "system:masters"}, "exempt from APF already"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := run(asOperator(tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q\nstdout: %s\nstderr: %s", err, tt.wantErr, stdout, stderr)
			}
		})
	}
	after := bulkheadObjects(t)
	if len(after) != len(before) {
		t.Fatalf("bad input changed the object set: %v → %v", before, after)
	}
	for name, rv := range before {
		if after[name] != rv {
			t.Errorf("bad input changed %s", name)
		}
	}
}

func TestCommandsTravelTheBreakGlassLane(t *testing.T) {
	_, stderr := mustRun(t, asOperator("shed", "list")...)
	if !strings.Contains(stderr, "using the break-glass lane as bulkhead/bulkhead") {
		t.Fatalf("an operator's shed list did not say it used the lane:\n%s", stderr)
	}
	_, stderr = mustRun(t, "shed", "list")
	if !strings.Contains(stderr, "system:masters: exempt") {
		t.Fatalf("the admin's shed list did not say it is exempt:\n%s", stderr)
	}
	// mallory may neither mint nor list FlowSchemas: the command fails, after saying why it
	// could not use the lane.
	_, stderr, _ = run("--as", "mallory", "--as-group", "system:authenticated", "shed", "list")
	if !strings.Contains(stderr, "NOT using the break-glass lane") || !strings.Contains(stderr, "you are not in its operators' group") {
		t.Fatalf("a non-operator was not told the lane is unavailable and why:\n%s", stderr)
	}
	cfg, used, err := breakglass.Config(context.Background(), serviceAccountConfig("victim", "agent"))
	if err == nil || used || cfg == nil {
		t.Fatalf("Config for an identity that may not mint: used %v, err %v; want the base config and the reason", used, err)
	}
}

func TestShedListShowsAndExpiryRemoves(t *testing.T) {
	createServiceAccount(t, "victim", "agent", "view")
	name := breakglass.ShedName(apf.ServiceAccount("victim", "agent"))
	mustRun(t, asOperator("shed", "--serviceaccount", "victim/agent", "--limit", "2", "--ttl", "3s", "--reason", "short")...)
	level, err := lab.Client.FlowcontrolV1().PriorityLevelConfigurations().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := *level.Spec.Limited.NominalConcurrencyShares; got != 2 {
		t.Fatalf("--limit 2 jail has %d shares", got)
	}
	list, _ := mustRun(t, asOperator("shed", "list")...)
	for _, want := range []string{name, "serviceaccount victim/agent", "limit 2", "alice", "short"} {
		if !strings.Contains(list, want) {
			t.Errorf("shed list lacks %q:\n%s", want, list)
		}
	}
	time.Sleep(4 * time.Second)
	list, stderr := mustRun(t, asOperator("shed", "list")...)
	if !strings.Contains(stderr, "removed expired shed "+name) || strings.Contains(list, name) {
		t.Fatalf("expired shed not removed by shed list:\nstdout: %s\nstderr: %s", list, stderr)
	}
	assertNoJail(t, name)
}

func assertNoJail(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	fc := lab.Client.FlowcontrolV1()
	if _, err := fc.FlowSchemas().Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("flow schema %s still there (err %v)", name, err)
	}
	if _, err := fc.PriorityLevelConfigurations().Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("priority level %s still there (err %v)", name, err)
	}
}

// Last: it removes break-glass.
func TestUninstallLeavesNoBulkheadObject(t *testing.T) {
	createServiceAccount(t, "victim", "agent", "view")
	mustRun(t, asOperator("shed", "--serviceaccount", "victim/agent")...)
	out, _ := mustRun(t, "uninstall")
	if !strings.Contains(out, "Namespace bulkhead deleted") || !strings.Contains(out, "FlowSchema "+breakglass.ShedName(apf.ServiceAccount("victim", "agent"))+" deleted") {
		t.Errorf("uninstall report:\n%s", out)
	}
	if left := bulkheadObjects(t); len(left) != 0 {
		t.Fatalf("uninstall left bulkhead objects: %v", left)
	}
	out, _ = mustRun(t, "uninstall")
	if !strings.Contains(out, "Nothing to remove.") {
		t.Errorf("second uninstall: %s", out)
	}
	_, stderr, _ := run(asOperator("shed", "list")...)
	if !strings.Contains(stderr, "NOT using the break-glass lane") || !strings.Contains(stderr, "break-glass is not installed") {
		t.Errorf("without break-glass, commands must say they could not use it:\n%s", stderr)
	}
}

// jailRejected reads the REJECTED column of name's row in `shed list`:
// NAME IDENTITY(2 words) MODE EXPIRES BY REJECTED ADMITTED REASON...
func jailRejected(list, name string) bool {
	for _, line := range strings.Split(list, "\n") {
		f := strings.Fields(line)
		if len(f) >= 8 && f[0] == name {
			n, err := strconv.Atoi(f[6])
			return err == nil && n > 0
		}
	}
	return false
}
