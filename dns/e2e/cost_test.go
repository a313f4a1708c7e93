package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	bdns "github.com/bulkhead-dev/bulkhead/dns"
)

const flowSchema = "bulkhead-dns-e2e"

// flowCost reads the API server's APF counters for flowSchema: requests dispatched and the sum
// of their estimated seats.
func flowCost(t *testing.T) (requests, seats float64) {
	t.Helper()
	raw, err := lab.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse apiserver metrics: %v", err)
	}
	ours := func(m *dto.Metric) bool {
		for _, l := range m.Label {
			if l.GetName() == "flow_schema" && l.GetValue() == flowSchema {
				return true
			}
		}
		return false
	}
	if f := families["apiserver_flowcontrol_dispatched_requests_total"]; f != nil {
		for _, m := range f.Metric {
			if ours(m) {
				requests += m.Counter.GetValue()
			}
		}
	}
	if f := families["apiserver_flowcontrol_work_estimated_seats"]; f != nil {
		for _, m := range f.Metric {
			if ours(m) {
				seats += m.Histogram.GetSampleSum()
			}
		}
	}
	return requests, seats
}

// TestNodeNeedsOnlyTheDeployRBACAndCostsOneWatchPerResource runs bulkhead dns as the service
// account of deploy/dns, with the RBAC of deploy/dns applied for real, and a FlowSchema of its own
// so the API server's APF metrics count exactly its requests.
func TestNodeNeedsOnlyTheDeployRBACAndCostsOneWatchPerResource(t *testing.T) {
	ctx := context.Background()
	applyRBAC(t)
	fs := &flowcontrolv1.FlowSchema{
		ObjectMeta: metav1.ObjectMeta{Name: flowSchema},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: "workload-low"},
			MatchingPrecedence:         500,
			DistinguisherMethod:        &flowcontrolv1.FlowDistinguisherMethod{Type: flowcontrolv1.FlowDistinguisherMethodByUserType},
			Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
				Subjects: []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindServiceAccount,
					ServiceAccount: &flowcontrolv1.ServiceAccountSubject{Namespace: "kube-system", Name: "bulkhead-dns"}}},
				ResourceRules:    []flowcontrolv1.ResourcePolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, ClusterScope: true, Namespaces: []string{"*"}}},
				NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
			}},
		},
	}
	if _, err := lab.Client.FlowcontrolV1().FlowSchemas().Create(ctx, fs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Client.FlowcontrolV1().FlowSchemas().Delete(ctx, flowSchema, metav1.DeleteOptions{}) })
	// APF picks new FlowSchemas up asynchronously.
	time.Sleep(2 * time.Second)

	asNode := rest.CopyConfig(lab.Config)
	asNode.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:kube-system:bulkhead-dns",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"},
	}
	reqBefore, seatsBefore := flowCost(t)
	n, err := bdns.Start(ctx, bdns.Config{
		Listen: "127.0.0.1:0", Snapshot: filepath.Join(t.TempDir(), "dns.snapshot"), ClusterDomain: "cluster.local",
		TTL: 5 * time.Second, Kube: asNode,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	waitReady(t, n)
	time.Sleep(2 * time.Second)
	reqStart, seatsStart := flowCost(t)
	const idle = 30 * time.Second
	time.Sleep(idle)
	reqIdle, seatsIdle := flowCost(t)
	t.Logf("start-up: %.0f requests, %.1f seats (estimated by APF); next %v idle: %.0f requests, %.1f seats",
		reqStart-reqBefore, seatsStart-seatsBefore, idle, reqIdle-reqStart, seatsIdle-seatsStart)
	t.Log("per hour (not measured here): client-go ends each watch after 5-10 min and re-establishes it, 12-24 watches per node")
	if reqStart-reqBefore < 2 {
		t.Fatalf("APF counted %.0f requests of the node: the FlowSchema did not match it, the cost is unmeasured", reqStart-reqBefore)
	}
	if reqStart-reqBefore > 6 {
		t.Fatalf("start-up took %.0f requests, want one list-or-watch per resource (plus discovery)", reqStart-reqBefore)
	}
	if reqIdle-reqStart != 0 {
		t.Fatalf("%.0f requests while idle: bulkhead dns must not poll", reqIdle-reqStart)
	}
}

// applyRBAC creates the objects of deploy/dns/rbac.yaml for the test's lifetime.
func applyRBAC(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile("../../deploy/dns/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objects := decodeAll(t, data)
	if len(objects) != 3 {
		t.Fatalf("rbac.yaml has %d objects, want ServiceAccount, ClusterRole, ClusterRoleBinding", len(objects))
	}
	for _, obj := range objects {
		if err := create(context.Background(), obj, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %T: %v", obj, err)
		}
		t.Cleanup(func() {
			if err := remove(context.Background(), obj); err != nil {
				t.Errorf("delete %T: %v", obj, err)
			}
		})
	}
}
