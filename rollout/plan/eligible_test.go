package plan

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestEligibleFollowsTheDaemonSetControllersRules(t *testing.T) {
	node := func(name string, labels map[string]string, taints ...corev1.Taint) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Spec: corev1.NodeSpec{Taints: taints}}
	}
	nodes := []corev1.Node{
		node("plain", map[string]string{"pool": "web"}),
		node("gpu", map[string]string{"pool": "gpu"}, corev1.Taint{Key: "gpu", Value: "true", Effect: corev1.TaintEffectNoSchedule}),
		node("cordoned", map[string]string{"pool": "web"}, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}),
		node("prefer-not", map[string]string{"pool": "web"}, corev1.Taint{Key: "x", Effect: corev1.TaintEffectPreferNoSchedule}),
		node("net-down", map[string]string{"pool": "web"}, corev1.Taint{Key: corev1.TaintNodeNetworkUnavailable, Effect: corev1.TaintEffectNoSchedule}),
	}
	tests := []struct {
		name string
		spec corev1.PodSpec
		want []string
	}{
		{"no constraints: untolerated taints exclude, daemon defaults tolerate cordon", corev1.PodSpec{},
			[]string{"plain", "cordoned", "prefer-not"}},
		{"host network also tolerates network-unavailable", corev1.PodSpec{HostNetwork: true},
			[]string{"plain", "cordoned", "prefer-not", "net-down"}},
		{"nodeSelector", corev1.PodSpec{NodeSelector: map[string]string{"pool": "gpu"}}, nil},
		{"nodeSelector with toleration", corev1.PodSpec{NodeSelector: map[string]string{"pool": "gpu"},
			Tolerations: []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists}}}, []string{"gpu"}},
		{"required affinity", corev1.PodSpec{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "pool", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"web"}}}}}}}}},
			nil},
		{"fixed node name", corev1.PodSpec{NodeName: "plain"}, []string{"plain"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, n := range Eligible(tt.spec, nodes) {
				got = append(got, n.Name)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Eligible = %v, want %v", got, tt.want)
			}
		})
	}
}
