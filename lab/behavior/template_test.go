package behavior

import (
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestPodTemplateIsSchedulableOnFakeNodesAndLabelledWithItsCreator(t *testing.T) {
	body, err := template("pods", "busy", "ci-7f9c")
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(body, &pod); err != nil {
		t.Fatalf("template is not a pod: %v", err)
	}
	if pod.Namespace != "busy" || pod.GenerateName != "ci-7f9c-" || pod.Labels[CreatedByLabel] != "ci-7f9c" {
		t.Errorf("pod metadata = %+v, want namespace busy, generateName ci-7f9c- and the created-by label", pod.ObjectMeta)
	}
	// The fake nodes carry no extra labels a selector could need, and no taints; a pod that asks
	// for neither and little CPU fits on any of them.
	if pod.Spec.NodeSelector != nil || pod.Spec.Affinity != nil || pod.Spec.NodeName != "" {
		t.Errorf("pod constrains its node: %+v", pod.Spec)
	}
	if len(pod.Spec.Containers) != 1 || pod.Spec.Containers[0].Resources.Requests.Cpu().MilliValue() > 100 {
		t.Errorf("containers = %+v, want one with a small CPU request", pod.Spec.Containers)
	}
}

func TestTemplateExistsForEveryCreatableResource(t *testing.T) {
	for _, r := range Templates {
		if _, err := template(r, "busy", "p"); err != nil {
			t.Errorf("template(%q): %v", r, err)
		}
	}
	if _, err := template("secrets", "busy", "p"); err == nil {
		t.Error("template(secrets) succeeded, want an error: create has no secret template")
	}
}
