package execute

import (
	"strings"
	"testing"
)

const goodManifest = `
# the agent
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  namespace: obs
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      serviceAccountName: agent
      containers:
      - name: agent
        image: agent:v1
`

func TestParseManifest(t *testing.T) {
	ds, err := ParseManifest([]byte(goodManifest), "team", false)
	if err != nil {
		t.Fatalf("ParseManifest: %v", err)
	}
	if ds.Namespace != "obs" || ds.Name != "agent" || ds.Spec.Template.Spec.ServiceAccountName != "agent" {
		t.Fatalf("parsed %s/%s sa %q", ds.Namespace, ds.Name, ds.Spec.Template.Spec.ServiceAccountName)
	}
	noNS := strings.Replace(goodManifest, "  namespace: obs\n", "", 1)
	if ds, err := ParseManifest([]byte(noNS), "team", false); err != nil || ds.Namespace != "team" {
		t.Fatalf("-n fills a missing namespace: %v %v", ds, err)
	}
}

func TestParseManifestRejectsWhatIsNotOneDaemonSet(t *testing.T) {
	tests := []struct {
		name, manifest, namespace, wantErr string
	}{
		{"a Deployment", strings.Replace(goodManifest, "kind: DaemonSet", "kind: Deployment", 1), "", `manifest is a "Deployment" of "apps/v1", not an apps/v1 DaemonSet`},
		{"an old API version", strings.Replace(goodManifest, "apps/v1", "extensions/v1beta1", 1), "", `of "extensions/v1beta1"`},
		{"malformed YAML", "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: [oops\n", "", "manifest"},
		{"two documents", goodManifest + "\n---\n" + goodManifest, "", "found 2 documents"},
		{"empty", "# nothing\n", "", "found 0 documents"},
		{"unknown field", strings.Replace(goodManifest, "  selector:", "  selektor: {}\n  selector:", 1), "", "unknown field"},
		{"namespace disagreement", goodManifest, "other", `in namespace "obs", but -n asks for "other"`},
		{"no selector", strings.Replace(goodManifest, "  selector:\n    matchLabels: {app: agent}\n", "", 1), "", "has no spec.selector"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseManifest([]byte(tt.manifest), tt.namespace, tt.namespace != ""); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
