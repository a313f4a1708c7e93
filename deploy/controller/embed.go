// Package manifests holds deploy/controller's manifests for `bulkhead install --controller`:
// the same files `kubectl apply -k deploy/controller` applies, embedded in the binary.
package manifests

import (
	"bytes"
	"embed"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

//go:embed namespace.yaml crd-rolloutpolicies.yaml crd-rolloutstatuses.yaml rbac.yaml admission.yaml deployment.yaml
var files embed.FS

// order is the apply order: the namespace, the CRDs (admission takes policies as parameters),
// the identity, the admission policies, the Deployment.
var order = []string{"namespace.yaml", "crd-rolloutpolicies.yaml", "crd-rolloutstatuses.yaml", "rbac.yaml", "admission.yaml", "deployment.yaml"}

// DefaultImage is the controller image the Deployment runs unless told otherwise.
const DefaultImage = "ghcr.io/bulkhead-dev/bulkhead:v0.1.0"

// Objects returns every object to apply, in order; the Deployment runs image.
func Objects(image string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, name := range order {
		data, err := files.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", name, err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var obj map[string]any
			if err := dec.Decode(&obj); err == io.EOF {
				break
			} else if err != nil {
				return nil, fmt.Errorf("manifest %s: %w", name, err)
			}
			if len(obj) == 0 {
				continue
			}
			u := &unstructured.Unstructured{Object: obj}
			if u.GetKind() == "Deployment" && image != "" {
				containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
				for i := range containers {
					containers[i].(map[string]any)["image"] = image
				}
				if err := unstructured.SetNestedSlice(u.Object, containers, "spec", "template", "spec", "containers"); err != nil {
					return nil, fmt.Errorf("manifest %s: image: %w", name, err)
				}
			}
			out = append(out, u)
		}
	}
	return out, nil
}
