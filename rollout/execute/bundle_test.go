package execute

import (
	"strings"
	"testing"
)

const agentBundle = `# what a chart renders for an agent
apiVersion: v1
kind: ServiceAccount
metadata:
  name: agent
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: agent-view
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: ServiceAccount, name: agent, namespace: obs}]
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: agent-config}
  data: {interval: 10s}
---
` + goodManifest

func TestParseBundleFindsTheOneDaemonSetAndKeepsTheRestInOrder(t *testing.T) {
	b, err := ParseBundle([]byte(agentBundle), "team", false)
	if err != nil {
		t.Fatal(err)
	}
	if b.DaemonSet.Namespace != "obs" || b.DaemonSet.Name != "agent" {
		t.Fatalf("DaemonSet %s/%s", b.DaemonSet.Namespace, b.DaemonSet.Name)
	}
	var got []string
	for _, o := range b.Others {
		got = append(got, o.GetKind()+"/"+o.GetName())
	}
	if strings.Join(got, " ") != "ServiceAccount/agent ClusterRoleBinding/agent-view ConfigMap/agent-config" {
		t.Fatalf("others = %v", got)
	}
	alone, err := ParseBundle([]byte(goodManifest), "", false)
	if err != nil || len(alone.Others) != 0 || alone.DaemonSet.Name != "agent" {
		t.Fatalf("a DaemonSet alone: %v %+v", err, alone)
	}
}

func TestParseBundleRefusesWhatCannotBeOneGuardedRollout(t *testing.T) {
	tests := []struct{ name, manifest, namespace, wantErr string }{
		{"no DaemonSet", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: agent}\n", "", "no apps/v1 DaemonSet among its 1 objects (ServiceAccount agent)"},
		{"two DaemonSets", goodManifest + "\n---\n" + strings.Replace(goodManifest, "name: agent\n  namespace", "name: agent2\n  namespace", 1), "", "2 DaemonSets (obs/agent, obs/agent2)"},
		{"an old DaemonSet", strings.Replace(goodManifest, "apps/v1", "extensions/v1beta1", 1), "", `DaemonSet of "extensions/v1beta1"`},
		{"an object without a name", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n---\n" + goodManifest, "", "a ConfigMap without metadata.name"},
		{"an object in another namespace than -n", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: elsewhere}\n---\n" +
			strings.Replace(goodManifest, "  namespace: obs\n", "", 1), "obs", `ConfigMap c is in namespace "elsewhere", but -n asks for "obs"`},
		{"malformed YAML", "apiVersion: v1\nkind: [\n", "", "manifest"},
		{"a DaemonSet with an unknown field", strings.Replace(agentBundle, "  selector:", "  selektor: {}\n  selector:", 1), "", "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseBundle([]byte(tt.manifest), tt.namespace, tt.namespace != ""); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestOrderedAppliesNamespacesAndCRDsFirst(t *testing.T) {
	b, err := ParseBundle([]byte("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a, namespace: ns1}\n---\n"+
		"apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: x.example.com}\n---\n"+
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: ns1}\n---\n"+goodManifest), "", false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range ordered(b.Others) {
		got = append(got, o.GetKind())
	}
	if strings.Join(got, " ") != "Namespace CustomResourceDefinition ServiceAccount" {
		t.Fatalf("order = %v", got)
	}
}
