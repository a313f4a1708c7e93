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
- create: pods
  namespace: busy
  every: 20s
  burst: 10
- delete: pods
  namespace: busy
  every: 20s
  burst: 10
- patch: configmaps/busy/state
  every: 5s
- update: configmaps/$(POD_NAMESPACE)/leader
  every: 10s
- list: pods
  namespace: lab
  every: 1m
  burst: 5
- create: configmaps
  namespace: busy
  once: true
`
	got, err := Parse(text)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := []Action{
		{Verb: VerbList, Resource: "pods", Every: 10 * time.Second, Jitter: 0.1, Burst: 1},
		{Verb: VerbList, Resource: "pods", FieldSelector: "spec.nodeName=$(NODE_NAME)", Limit: 500, Every: 30 * time.Second, Jitter: 0.1, Burst: 1},
		{Verb: VerbWatch, Resource: "services", Jitter: 0.1, Burst: 1},
		{Verb: VerbGet, Resource: "configmaps", Namespace: "kube-system", Name: "some-config", Every: 5 * time.Second, Jitter: 0.1, Burst: 1},
		{Verb: VerbList, Resource: "nodes", Once: true, Jitter: 0.1, Burst: 1},
		{Verb: VerbList, Resource: "leases.coordination.k8s.io", Namespace: "kube-node-lease", LabelSelector: "a=b", ResourceVersion: "0", HasRV: true, Every: time.Minute, Jitter: 0.25, Burst: 1},
		{Verb: VerbGet, Resource: "nodes", Name: "$(NODE_NAME)", Every: 2 * time.Second, Jitter: 0.1, Burst: 1},
		{Verb: VerbCreate, Resource: "pods", Namespace: "busy", Every: 20 * time.Second, Jitter: 0.1, Burst: 10},
		{Verb: VerbDelete, Resource: "pods", Namespace: "busy", Every: 20 * time.Second, Jitter: 0.1, Burst: 10},
		{Verb: VerbPatch, Resource: "configmaps", Namespace: "busy", Name: "state", Every: 5 * time.Second, Jitter: 0.1, Burst: 1},
		{Verb: VerbUpdate, Resource: "configmaps", Namespace: "$(POD_NAMESPACE)", Name: "leader", Every: 10 * time.Second, Jitter: 0.1, Burst: 1},
		{Verb: VerbList, Resource: "pods", Namespace: "lab", Every: time.Minute, Jitter: 0.1, Burst: 5},
		{Verb: VerbCreate, Resource: "configmaps", Namespace: "busy", Once: true, Jitter: 0.1, Burst: 1},
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
		{"no verb", "- every: 10s", "action 1: needs exactly one of list, watch, get, create, update, patch or delete"},
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
		{"create without template", "- create: secrets\n  namespace: busy\n  every: 1s", "action 1: create: no built-in template for \"secrets\""},
		{"create without namespace", "- create: pods\n  every: 1s", "action 1: create: pods needs a namespace"},
		{"create with selector", "- create: pods\n  namespace: busy\n  labelSelector: a=b\n  every: 1s", "create takes no labelSelector"},
		{"create with limit", "- create: pods\n  namespace: busy\n  limit: 5\n  every: 1s", "limit applies to list only"},
		{"create without schedule", "- create: pods\n  namespace: busy", "create needs every"},
		{"delete without namespace", "- delete: pods\n  every: 1s", "delete: pods needs a namespace"},
		{"delete of a name", "- delete: pods/busy/x\n  every: 1s", "delete takes a resource name"},
		{"delete without create", "- create: pods\n  namespace: ci\n  every: 1s\n- delete: pods\n  namespace: busy\n  every: 1s",
			"action 2: delete: pods in namespace \"busy\" deletes what a create of this behaviour made"},
		{"patch without name", "- patch: configmaps\n  every: 1s", "patch target \"configmaps\" must be resource/namespace/name"},
		{"patch with namespace", "- patch: configmaps/busy/x\n  namespace: busy\n  every: 1s", "patch takes resource/namespace/name"},
		{"update with resourceVersion", "- update: configmaps/busy/x\n  resourceVersion: \"1\"\n  every: 1s", "update takes no labelSelector, fieldSelector or resourceVersion"},
		{"update with empty part", "- update: configmaps//x\n  every: 1s", "update target \"configmaps//x\" has an empty part"},
		{"burst zero", "- list: pods\n  every: 1s\n  burst: 0", "burst must be between 1 and 100, got 0"},
		{"burst too large", "- get: nodes/x\n  every: 1s\n  burst: 101", "burst must be between 1 and 100"},
		{"burst on watch", "- watch: pods\n  burst: 2", "burst applies to actions with every or once"},
		{"create and get", "- create: pods\n  get: pods/busy/x\n  every: 1s", "exactly one"},
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
