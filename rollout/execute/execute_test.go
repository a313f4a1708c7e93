package execute

import (
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulkhead-dev/bulkhead/apf"
)

func TestLaneNamesStayValidAndUnique(t *testing.T) {
	if got := LaneNames("obs", "agent"); got.FlowSchema != "bulkhead-rollout-obs.agent" || got.PriorityLevel != got.FlowSchema {
		t.Fatalf("LaneNames = %+v", got)
	}
	long := strings.Repeat("a", 250)
	a, b := LaneNames("obs", long), LaneNames("obs", long+"b")
	if len(a.FlowSchema) != 253 || len(b.FlowSchema) != 253 || a.FlowSchema == b.FlowSchema {
		t.Fatalf("long names: %d %d chars, equal=%v", len(a.FlowSchema), len(b.FlowSchema), a.FlowSchema == b.FlowSchema)
	}
	if _, _, err := LaneObjects(a, "o", apf.ServiceAccount("obs", "agent"), 1); err != nil {
		t.Fatalf("a truncated lane name must still build: %v", err)
	}
}

func TestNodeLabelKeyIsAValidLabelNamePerDaemonSet(t *testing.T) {
	a, b := NodeLabelKey("obs", "agent"), NodeLabelKey("obs2", "agent")
	if a == b || !strings.HasPrefix(a, "rollout.bulkhead.dev/gate-") || len(strings.TrimPrefix(a, "rollout.bulkhead.dev/")) > 63 {
		t.Fatalf("keys %q %q", a, b)
	}
}

func TestGateIsUndoneExactly(t *testing.T) {
	const key = "rollout.bulkhead.dev/gate-x"
	userTerm := corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "pool", Operator: corev1.NodeSelectorOpIn, Values: []string{"web"}}}}
	tests := []struct {
		name string
		spec corev1.PodSpec
	}{
		{"no affinity", corev1.PodSpec{ServiceAccountName: "agent"}},
		{"user node affinity terms", corev1.PodSpec{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{userTerm, userTerm}}}}}},
		{"only pod anti-affinity", corev1.PodSpec{Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{}}}},
		{"only preferred node affinity", corev1.PodSpec{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{Weight: 1, Preference: userTerm}}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gated := Gate(tt.spec, key)
			if !Gated(gated, key) || Gated(tt.spec, key) {
				t.Fatalf("Gated: gated=%v original=%v", Gated(gated, key), Gated(tt.spec, key))
			}
			for _, term := range gated.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
				last := term.MatchExpressions[len(term.MatchExpressions)-1]
				if last.Key != key || last.Operator != corev1.NodeSelectorOpExists {
					t.Fatalf("term %+v lacks the gate (terms are ORed: every one needs it)", term)
				}
			}
			if got := Ungate(gated, key); !reflect.DeepEqual(got, tt.spec) {
				t.Fatalf("Ungate(Gate(spec)) = %+v\nwant %+v", got, tt.spec)
			}
		})
	}
}

func TestLaneObjectsNeitherLendNorBorrow(t *testing.T) {
	pl, fs, err := LaneObjects(LaneNames("obs", "agent"), "daemonset/obs/agent", apf.ServiceAccount("obs", "agent"), 27)
	if err != nil {
		t.Fatalf("LaneObjects: %v", err)
	}
	l := pl.Spec.Limited
	if *l.NominalConcurrencyShares != 27 || *l.LendablePercent != 0 || *l.BorrowingLimitPercent != 0 || l.LimitResponse.Type != flowcontrolv1.LimitResponseTypeQueue {
		t.Fatalf("level = %+v", l)
	}
	if fs.Spec.MatchingPrecedence != apf.PrecedenceRolloutLane || fs.Spec.Rules[0].Subjects[0].ServiceAccount.Name != "agent" {
		t.Fatalf("schema = %+v", fs.Spec)
	}
	sq, err := SqueezedLane(LaneNames("obs", "agent"), "daemonset/obs/agent")
	if err != nil {
		t.Fatalf("SqueezedLane: %v", err)
	}
	if sq.Spec.Limited.LimitResponse.Type != flowcontrolv1.LimitResponseTypeReject || *sq.Spec.Limited.NominalConcurrencyShares != 0 {
		t.Fatalf("squeezed = %+v", sq.Spec.Limited)
	}
}

func TestBudgetSeats(t *testing.T) {
	tests := []struct {
		seats   int
		percent float64
		want    int
		wantErr string
	}{
		{600, 10, 60, ""},
		{600, 0.01, 1, ""},
		{600, 100, 600, ""},
		{600, 0, 0, "budget 0% must be within (0, 100]"},
		{600, 101, 0, "budget 101%"},
		{0, 10, 0, "server capacity 0 seats"},
	}
	for _, tt := range tests {
		got, err := BudgetSeats(tt.seats, tt.percent)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("BudgetSeats(%d, %v) error = %v, want %q", tt.seats, tt.percent, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("BudgetSeats(%d, %v) = %d, %v; want %d", tt.seats, tt.percent, got, err, tt.want)
		}
	}
}

func TestCheckServiceAccountRefusesTheDefaultAccount(t *testing.T) {
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "obs", Name: "agent"}}
	if err := CheckServiceAccount(ds); err == nil || !strings.Contains(err.Error(), "default service account") {
		t.Fatalf("error = %v", err)
	}
	ds.Spec.Template.Spec.ServiceAccountName = "agent"
	if err := CheckServiceAccount(ds); err != nil {
		t.Fatalf("own service account: %v", err)
	}
}

// StartUpdate marks the template after the rollout recorded its revision: the mark must not make
// the live template look like a new one (RequireRevision would call every step superseded), and a
// real change of the template must.
func TestTemplateRevisionIgnoresOnlyBulkheadsOwnMarks(t *testing.T) {
	user := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "agent"}},
		Spec: corev1.PodSpec{ServiceAccountName: "agent", Containers: []corev1.Container{{Name: "agent", Image: "agent:v2"}}}}
	want, err := TemplateRevision(user)
	if err != nil {
		t.Fatal(err)
	}
	marked := *user.DeepCopy()
	marked.Annotations = map[string]string{GuardedPodAnnotation: "true"}
	markedAndGated := *marked.DeepCopy()
	markedAndGated.Spec = Gate(markedAndGated.Spec, NodeLabelKey("obs", "agent"))
	annotated := *marked.DeepCopy()
	annotated.Annotations["team"] = "obs"
	changed := *user.DeepCopy()
	changed.Spec.Containers[0].Image = "agent:v3"
	for _, tt := range []struct {
		name     string
		template corev1.PodTemplateSpec
		same     bool
	}{
		{"marked guarded", marked, true},
		{"marked and gated", markedAndGated, true},
		{"an annotation of the author's", annotated, false},
		{"a new image", changed, false},
	} {
		got, err := TemplateRevision(tt.template)
		if err != nil {
			t.Fatal(err)
		}
		if (got == want) != tt.same {
			t.Errorf("%s: revision %s, the user's %s; same=%v, want %v", tt.name, got, want, got == want, tt.same)
		}
	}
}
