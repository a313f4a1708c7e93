package behavior

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CreatedByLabel marks the objects a pod's create actions made with that pod's name, so that
// what a behaviour leaves behind can be found and cleaned up.
const CreatedByLabel = "lab.bulkhead.dev/created-by"

// TouchedAnnotation is what update and patch change: a write the apiserver must store and every
// watcher of the object receives, without changing what the object does.
const TouchedAnnotation = "lab.bulkhead.dev/touched"

// template returns the JSON body of the object (of resource plural) that a create action of pod
// makes in namespace.
// Pods are like the lab's filler pods: a pause container with small requests and no node
// selector, so the scheduler places them on the fake nodes and the fake kubelets run them.
func template(plural, namespace, pod string) ([]byte, error) {
	meta := metav1.ObjectMeta{
		GenerateName: pod + "-",
		Namespace:    namespace,
		Labels:       map[string]string{CreatedByLabel: pod},
	}
	var obj any
	switch plural {
	case "pods":
		obj = &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: meta,
			Spec: corev1.PodSpec{
				Containers: []corev1.Container{{
					Name:  "job",
					Image: "registry.k8s.io/pause:3.10",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceCPU:    resource.MustParse("10m"),
						corev1.ResourceMemory: resource.MustParse("16Mi"),
					}},
				}},
				RestartPolicy:                corev1.RestartPolicyNever,
				AutomountServiceAccountToken: new(false),
				EnableServiceLinks:           new(false),
			},
		}
	case "configmaps":
		obj = &corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: meta,
			Data:       map[string]string{"created-by": pod},
		}
	default:
		return nil, fmt.Errorf("create: no built-in template for %q", plural)
	}
	body, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode %s template: %w", plural, err)
	}
	return body, nil
}
