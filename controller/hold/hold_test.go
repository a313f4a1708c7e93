package hold

import (
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/bulkhead-dev/bulkhead/rollout/execute"
)

func template(affinity *corev1.Affinity) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "agent"}},
		Spec: corev1.PodSpec{ServiceAccountName: "agent", Affinity: affinity,
			Containers: []corev1.Container{{Name: "agent", Image: "agent:v1"}}},
	}
}

func userAffinity() *corev1.Affinity {
	return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{
			{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/os", Operator: corev1.NodeSelectorOpIn, Values: []string{"linux"}}}},
			{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"x"}}}},
		}}}}
}

// What admission does to a new DaemonSet's template, in Go: the hold key ANDed into every term.
func held(t corev1.PodTemplateSpec) corev1.PodTemplateSpec {
	t.Spec = execute.Gate(t.Spec, HoldKey)
	return t
}

func TestTheUserTemplateIsTheTemplateWithoutBulkheadsGates(t *testing.T) {
	gate := execute.NodeLabelKey("agents", "agent")
	tests := []struct {
		name string
		in   corev1.PodTemplateSpec
		want corev1.PodTemplateSpec
	}{
		{"held by admission, no affinity of its own", held(template(nil)), template(nil)},
		{"held by admission, with the user's terms", held(template(userAffinity())), template(userAffinity())},
		{"gated by a rollout", func() corev1.PodTemplateSpec {
			t := template(userAffinity())
			t.Spec = execute.Gate(t.Spec, gate)
			return t
		}(), template(userAffinity())},
		{"not held", template(userAffinity()), template(userAffinity())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := UserTemplate(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("UserTemplate = %+v\nwant %+v", got.Spec.Affinity, tt.want.Spec.Affinity)
			}
		})
	}
}

func TestARevisionIgnoresTheHoldAndFollowsTheTemplate(t *testing.T) {
	plain, err := Revision(template(nil))
	if err != nil {
		t.Fatal(err)
	}
	heldRev, _ := Revision(held(template(nil)))
	if plain != heldRev {
		t.Fatalf("held and plain template have revisions %s and %s; want the same", heldRev, plain)
	}
	v2 := template(nil)
	v2.Spec.Containers[0].Image = "agent:v2"
	other, _ := Revision(v2)
	if other == plain || len(plain) != 16 {
		t.Fatalf("revisions %q (v1) and %q (v2): want two different 16-character names", plain, other)
	}
}

func TestRequestedStrategyReadsWhatAdmissionWrote(t *testing.T) {
	ds := func(v string) *appsv1.DaemonSet {
		return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "agents", Name: "agent", Annotations: map[string]string{RequestedStrategyAnnotation: v}}}
	}
	tenPercent, zero := intstr.FromString("10%"), intstr.FromInt32(0)
	// These strings are the ones the CEL in admission.yaml produced in the lab.
	got, ok, err := RequestedStrategy(ds(`{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"10%","maxSurge":0}}`))
	want := appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &tenPercent, MaxSurge: &zero}}
	if err != nil || !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("RequestedStrategy = %+v, %v, %v; want %+v", got, ok, err, want)
	}
	if got, ok, err := RequestedStrategy(ds(`{"type":"OnDelete"}`)); err != nil || !ok || got.Type != appsv1.OnDeleteDaemonSetStrategyType {
		t.Fatalf("OnDelete: %+v, %v, %v", got, ok, err)
	}
	if _, ok, err := RequestedStrategy(&appsv1.DaemonSet{}); ok || err != nil {
		t.Fatalf("no annotation: ok %v, err %v; want neither", ok, err)
	}
	for _, bad := range []string{`{"type":`, `{"type":"Recreate"}`} {
		if _, _, err := RequestedStrategy(ds(bad)); err == nil || !strings.Contains(err.Error(), RequestedStrategyAnnotation) {
			t.Fatalf("%s: error %v, want one naming the annotation", bad, err)
		}
	}
}

func TestAHaltedRecordNamesItsDaemonSetAndGoesWithIt(t *testing.T) {
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "agents", Name: strings.Repeat("a", 250), UID: "u-1"}}
	rec, err := HaltedRecord(ds, held(template(nil)), strings.Repeat("r", 2000))
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Name) > 253 || !strings.Contains(rec.Name, ".halted-") {
		t.Fatalf("name %q (%d characters)", rec.Name, len(rec.Name))
	}
	if rec.Labels[HaltedLabel] != "true" || rec.Annotations[DaemonSetAnnotation] != ds.Name || len(rec.Annotations[ReasonAnnotation]) > 1003 {
		t.Fatalf("labels %v, annotations: daemonset %q, reason of %d bytes", rec.Labels, rec.Annotations[DaemonSetAnnotation], len(rec.Annotations[ReasonAnnotation]))
	}
	if len(rec.OwnerReferences) != 1 || rec.OwnerReferences[0].UID != "u-1" {
		t.Fatalf("owner %+v: the record must go with its DaemonSet", rec.OwnerReferences)
	}
	if !reflect.DeepEqual(rec.Template, template(nil)) {
		t.Fatalf("the record holds the user's template, not the held one: %+v", rec.Template.Spec.Affinity)
	}
}
