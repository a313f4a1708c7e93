package manifests

import (
	"os"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/controller/api/v1alpha1"
	"github.com/bulkhead-dev/bulkhead/controller/hold"
)

func TestTheManifestsDecodeInApplyOrderWithTheImageGiven(t *testing.T) {
	objs, err := Objects("registry.example/bulkhead:v9")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind())
		if o.GetKind() == "Deployment" {
			c := o.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
			if c["image"] != "registry.example/bulkhead:v9" {
				t.Fatalf("image %v", c["image"])
			}
		}
	}
	want := "Namespace CustomResourceDefinition CustomResourceDefinition ServiceAccount ClusterRole ClusterRoleBinding Role RoleBinding Role RoleBinding " +
		"MutatingAdmissionPolicy MutatingAdmissionPolicyBinding ValidatingAdmissionPolicy ValidatingAdmissionPolicyBinding Deployment"
	if got := strings.Join(kinds, " "); got != want {
		t.Fatalf("kinds in order:\n%s\nwant\n%s", got, want)
	}
}

// The CEL cannot import Go: every name admission and the controller share is spelt in both.
func TestAdmissionAndTheControllerUseTheSameNames(t *testing.T) {
	data, err := os.ReadFile("admission.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{hold.HeldAnnotation, hold.RequestedStrategyAnnotation, hold.HoldKey, hold.HaltedLabel,
		hold.DaemonSetAnnotation, hold.ReasonAnnotation, hold.ControllerUser(), "'" + hold.FieldManager + "'",
		"'" + hold.HeldCreate + "'", "'" + hold.HeldUpdate + "'", v1alpha1.OptOutLabel, "rollout.bulkhead.dev/gate-", "rollout.bulkhead.dev/state"} {
		if !strings.Contains(string(data), name) {
			t.Errorf("admission.yaml does not mention %s", name)
		}
	}
	for _, ns := range v1alpha1.ExcludedNamespaces {
		if !strings.Contains(string(data), "values: [kube-system, bulkhead]") || !strings.Contains(string(data), ns) {
			t.Errorf("admission.yaml does not exclude namespace %s", ns)
		}
	}
	rbac, err := os.ReadFile("rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rbac), "name: "+hold.ControllerServiceAccount+"\n  namespace: "+hold.ControllerNamespace) {
		t.Errorf("rbac.yaml's service account is not %s/%s", hold.ControllerNamespace, hold.ControllerServiceAccount)
	}
}

// A YAML flow mapping splits at a comma: an unquoted description with one put a key of its own
// into the property's schema, which server-side apply refused only in the lab. Every key of
// every schema must be a schema keyword.
func TestEveryCRDSchemaHasOnlySchemaKeywords(t *testing.T) {
	objs, err := Objects("registry.example/bulkhead:v9")
	if err != nil {
		t.Fatal(err)
	}
	keywords := map[string]bool{}
	for _, k := range strings.Fields(`type description properties items required enum default format pattern minimum maximum
		exclusiveMinimum exclusiveMaximum minLength maxLength minItems maxItems uniqueItems minProperties maxProperties
		additionalProperties nullable anyOf oneOf allOf not x-kubernetes-validations x-kubernetes-int-or-string
		x-kubernetes-preserve-unknown-fields x-kubernetes-list-type x-kubernetes-list-map-keys x-kubernetes-map-type
		x-kubernetes-embedded-resource`) {
		keywords[k] = true
	}
	var check func(path string, schema map[string]any)
	check = func(path string, schema map[string]any) {
		for k, v := range schema {
			if !keywords[k] {
				t.Errorf("%s: %q is not a schema keyword (an unquoted comma in a flow mapping?)", path, k)
			}
			switch k {
			case "properties":
				for name, p := range v.(map[string]any) {
					check(path+"."+name, p.(map[string]any))
				}
			case "items", "additionalProperties":
				if sub, ok := v.(map[string]any); ok {
					check(path+"[]", sub)
				}
			}
		}
	}
	crds := 0
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		crds++
		for _, v := range o.Object["spec"].(map[string]any)["versions"].([]any) {
			version := v.(map[string]any)
			check(o.GetName()+"/"+version["name"].(string), version["schema"].(map[string]any)["openAPIV3Schema"].(map[string]any))
		}
	}
	if crds != 2 {
		t.Fatalf("%d CRDs, want 2", crds)
	}
}
