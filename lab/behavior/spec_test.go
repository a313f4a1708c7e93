package behavior

import (
	"strings"
	"testing"
	"time"
)

func TestParseAcceptsTheDocumentedActions(t *testing.T) {
	text := `
- list: pods
  every: 10s
- list: pods
  fieldSelector: spec.nodeName=$(NODE_NAME)
  limit: 500
  every: 30s
- watch: services
- get: configmaps/kube-system/some-config
  every: 5s
- list: nodes
  once: true
- list: leases.coordination.k8s.io
  namespace: kube-node-lease
  labelSelector: a=b
  resourceVersion: "0"
  every: 1m
  jitter: 25%
- get: nodes/$(NODE_NAME)
  every: 2s
`
	got, err := Parse(text)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := []Action{
		{Verb: VerbList, Resource: "pods", Every: 10 * time.Second, Jitter: 0.1},
		{Verb: VerbList, Resource: "pods", FieldSelector: "spec.nodeName=$(NODE_NAME)", Limit: 500, Every: 30 * time.Second, Jitter: 0.1},
		{Verb: VerbWatch, Resource: "services", Jitter: 0.1},
		{Verb: VerbGet, Resource: "configmaps", Namespace: "kube-system", Name: "some-config", Every: 5 * time.Second, Jitter: 0.1},
		{Verb: VerbList, Resource: "nodes", Once: true, Jitter: 0.1},
		{Verb: VerbList, Resource: "leases.coordination.k8s.io", Namespace: "kube-node-lease", LabelSelector: "a=b", ResourceVersion: "0", HasRV: true, Every: time.Minute, Jitter: 0.25},
		{Verb: VerbGet, Resource: "nodes", Name: "$(NODE_NAME)", Every: 2 * time.Second, Jitter: 0.1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d actions, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("action %d:\n got %+v\nwant %+v", i+1, got[i], want[i])
		}
	}
}

func TestParseRejectsMalformedBehaviours(t *testing.T) {
	cases := []struct {
		name, text, wantErr string
	}{
		{"empty", "  ", "behavior is empty"},
		{"not yaml list", "list: pods", "not a YAML list"},
		{"broken yaml", "- list: [pods", "not a YAML list"},
		{"no actions", "[]", "no actions"},
		{"no verb", "- every: 10s", "action 1: needs exactly one of list, watch or get"},
		{"two verbs", "- list: pods\n  get: pods/x\n  every: 1s", "exactly one"},
		{"unknown field", "- list: pods\n  every: 1s\n  evry: 2s", "unknown field"},
		{"empty resource", "- list: ''\n  every: 1s", "needs a resource"},
		{"list without schedule", "- list: pods", "needs every"},
		{"bad duration", "- list: pods\n  every: soon", "every:"},
		{"too fast", "- list: pods\n  every: 1ms", "at least 50ms"},
		{"once and every", "- list: pods\n  every: 1s\n  once: true", "exclude each other"},
		{"watch with every", "- watch: pods\n  every: 1s", "runs continuously"},
		{"negative limit", "- list: pods\n  every: 1s\n  limit: -1", "limit must be positive"},
		{"limit on get", "- get: pods/ns/x\n  every: 1s\n  limit: 5", "no namespace, selectors or limit"},
		{"limit on watch", "- watch: pods\n  limit: 5", "limit applies to list only"},
		{"get without name", "- get: pods\n  every: 1s", "must be resource/namespace/name"},
		{"get with empty part", "- get: pods//x\n  every: 1s", "empty part"},
		{"list with path", "- list: pods/x\n  every: 1s", "takes a resource name"},
		{"jitter without every", "- list: pods\n  once: true\n  jitter: 10%", "jitter applies"},
		{"jitter too large", "- list: pods\n  every: 1s\n  jitter: 100%", "jitter: must be in"},
		{"second action bad", "- list: pods\n  every: 1s\n- list: nodes", "action 2:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.text)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded, want error containing %q", tc.text, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Parse(%q) error %q, want it to contain %q", tc.text, err, tc.wantErr)
			}
		})
	}
}

func TestExpandSubstitutesPodVariables(t *testing.T) {
	actions, err := Parse(`
- list: pods
  fieldSelector: spec.nodeName=$(NODE_NAME)
  labelSelector: owner=$(POD_NAME)
  every: 1s
- get: configmaps/$(POD_NAMESPACE)/$(POD_NAME)
  every: 1s
`)
	if err != nil {
		t.Fatal(err)
	}
	got := Expand(actions, Vars{NodeName: "node-0007", PodName: "agent-x", PodNamespace: "telemetry"})
	if got[0].FieldSelector != "spec.nodeName=node-0007" || got[0].LabelSelector != "owner=agent-x" {
		t.Errorf("list selectors not expanded: %+v", got[0])
	}
	if got[1].Namespace != "telemetry" || got[1].Name != "agent-x" {
		t.Errorf("get target not expanded: %+v", got[1])
	}
	if actions[0].FieldSelector != "spec.nodeName=$(NODE_NAME)" {
		t.Errorf("Expand modified its input: %+v", actions[0])
	}
}
