package v1alpha1

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func ds(ns string, labels map[string]string) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "agent", Labels: labels}}
}

func TestAPolicySelectsByNamespaceNameNamespaceLabelsAndDaemonSetLabels(t *testing.T) {
	team := map[string]string{"team": "obs"}
	tests := []struct {
		name   string
		spec   RolloutPolicySpec
		nsLab  map[string]string
		ds     *appsv1.DaemonSet
		wanted bool
	}{
		{"by name", RolloutPolicySpec{Namespaces: []string{"agents"}}, nil, ds("agents", nil), true},
		{"another namespace", RolloutPolicySpec{Namespaces: []string{"agents"}}, nil, ds("other", nil), false},
		{"every namespace", RolloutPolicySpec{NamespaceSelector: &metav1.LabelSelector{}}, nil, ds("other", nil), true},
		{"never kube-system", RolloutPolicySpec{NamespaceSelector: &metav1.LabelSelector{}}, nil, ds("kube-system", nil), false},
		{"never bulkhead", RolloutPolicySpec{NamespaceSelector: &metav1.LabelSelector{}}, nil, ds("bulkhead", nil), false},
		{"opted out", RolloutPolicySpec{NamespaceSelector: &metav1.LabelSelector{}}, nil, ds("agents", map[string]string{OptOutLabel: "true"}), false},
		{"namespace labels", RolloutPolicySpec{NamespaceSelector: &metav1.LabelSelector{MatchLabels: team}}, team, ds("x", nil), true},
		{"namespace labels missing", RolloutPolicySpec{NamespaceSelector: &metav1.LabelSelector{MatchLabels: team}}, nil, ds("x", nil), false},
		{"name and labels both needed", RolloutPolicySpec{Namespaces: []string{"agents"}, NamespaceSelector: &metav1.LabelSelector{MatchLabels: team}}, nil, ds("agents", nil), false},
		{"DaemonSet NotIn", RolloutPolicySpec{Namespaces: []string{"agents"}, Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"system"}}}}}, nil, ds("agents", nil), true},
		{"DaemonSet Exists missing", RolloutPolicySpec{Namespaces: []string{"agents"}, Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "tier", Operator: metav1.LabelSelectorOpExists}}}}, nil, ds("agents", nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: tt.spec}
			got, err := p.Selects(tt.nsLab, tt.ds)
			if err != nil || got != tt.wanted {
				t.Fatalf("Selects = %v, %v; want %v", got, err, tt.wanted)
			}
		})
	}
}

func TestGuardWinsOverObserveThenTheFirstName(t *testing.T) {
	all := &metav1.LabelSelector{}
	b := &RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: RolloutPolicySpec{NamespaceSelector: all}}
	c := &RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: RolloutPolicySpec{NamespaceSelector: all, Mode: Guard}}
	a := &RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: RolloutPolicySpec{NamespaceSelector: all, Mode: Observe}}
	got, err := Effective([]*RolloutPolicy{c, a, b}, nil, ds("agents", nil))
	if err != nil || got != b {
		t.Fatalf("Effective = %v, %v; want policy b", got, err)
	}
	if got, _ := Effective([]*RolloutPolicy{c}, nil, ds("kube-system", nil)); got != nil {
		t.Fatalf("kube-system got policy %s", got.Name)
	}
}

func TestSettingsAreTheRolloutCoresFlags(t *testing.T) {
	p := &RolloutPolicy{Spec: RolloutPolicySpec{Waves: []string{"2", "10%", "100%"}, Soak: "2m", Budget: map[string]string{"seats": "10%", "cpu": "25%", "memory": "30%"}, Compartments: true}}
	got, err := p.Settings()
	want := Settings{Mode: Guard, Waves: "2,10%,100%", Soak: 2 * time.Minute, Budget: "cpu=25%,memory=30%,seats=10%", Compartments: true}
	if err != nil || got != want {
		t.Fatalf("Settings = %+v, %v; want %+v", got, err, want)
	}
	if got, err := (&RolloutPolicy{}).Settings(); err != nil || got != (Settings{Mode: Guard}) {
		t.Fatalf("an empty policy: %+v, %v; want every default", got, err)
	}
	if _, err := (&RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Spec: RolloutPolicySpec{Soak: "soon"}}).Settings(); err == nil {
		t.Fatalf("a bad soak must be an error")
	}
}
