package behavior

import (
	"io"
	"strings"
	"testing"
)

var testResources = Resources{
	"pods":       {prefix: "/api/v1", plural: "pods", namespaced: true},
	"nodes":      {prefix: "/api/v1", plural: "nodes"},
	"leases":     {prefix: "/apis/coordination.k8s.io/v1", plural: "leases", namespaced: true},
	"configmaps": {prefix: "/api/v1", plural: "configmaps", namespaced: true},
}

func TestPathBuildsRequestsForEachScope(t *testing.T) {
	cases := []struct {
		name     string
		action   Action
		watch    bool
		cont     string
		want     string
		wantErrs string
	}{
		{name: "cluster-wide list", action: Action{Verb: VerbList, Resource: "pods"}, want: "/api/v1/pods"},
		{name: "consistent read keeps empty resourceVersion", action: Action{Verb: VerbList, Resource: "pods", HasRV: true}, want: "/api/v1/pods?resourceVersion="},
		{name: "paged selector list", action: Action{Verb: VerbList, Resource: "pods", FieldSelector: "spec.nodeName=n1", Limit: 500},
			want: "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1&limit=500"},
		{name: "continue drops resourceVersion", action: Action{Verb: VerbList, Resource: "pods", Limit: 10, HasRV: true, ResourceVersion: "0"}, cont: "abc",
			want: "/api/v1/pods?continue=abc&limit=10"},
		{name: "namespaced group watch", action: Action{Verb: VerbWatch, Resource: "leases", Namespace: "kube-node-lease", HasRV: true, ResourceVersion: "42"}, watch: true,
			want: "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases?allowWatchBookmarks=true&resourceVersion=42&watch=true"},
		{name: "namespaced get", action: Action{Verb: VerbGet, Resource: "configmaps", Namespace: "kube-system", Name: "x"}, want: "/api/v1/namespaces/kube-system/configmaps/x"},
		{name: "cluster-scoped get", action: Action{Verb: VerbGet, Resource: "nodes", Name: "node-1"}, want: "/api/v1/nodes/node-1"},
		{name: "create posts to the collection", action: Action{Verb: VerbCreate, Resource: "pods", Namespace: "busy"}, want: "/api/v1/namespaces/busy/pods"},
		{name: "delete names the object it picked", action: Action{Verb: VerbDelete, Resource: "pods", Namespace: "busy", Name: "ci-x-abcde"}, want: "/api/v1/namespaces/busy/pods/ci-x-abcde"},
		{name: "patch of a group resource", action: Action{Verb: VerbPatch, Resource: "leases", Namespace: "busy", Name: "l"}, want: "/apis/coordination.k8s.io/v1/namespaces/busy/leases/l"},
		{name: "update namespaced without namespace", action: Action{Verb: VerbUpdate, Resource: "configmaps", Name: "x"}, wantErrs: `update of namespaced "configmaps" needs resource/namespace/name`},
		{name: "unknown resource", action: Action{Verb: VerbList, Resource: "widgets"}, wantErrs: `unknown resource "widgets"`},
		{name: "namespace on cluster-scoped", action: Action{Verb: VerbList, Resource: "nodes", Namespace: "x"}, wantErrs: "cluster-scoped"},
		{name: "get namespaced without namespace", action: Action{Verb: VerbGet, Resource: "pods", Name: "x"}, wantErrs: "needs resource/namespace/name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := testResources.path(tc.action, tc.watch, tc.cont)
			if tc.wantErrs != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrs) {
					t.Fatalf("path() = %q, %v; want error containing %q", got, err, tc.wantErrs)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("path() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestReadListMetaReadsOnlyTheLeadingMetadata(t *testing.T) {
	items := strings.Repeat(`{"metadata":{"name":"p"}},`, 1000)
	body := `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"123","continue":"tok","remainingItemCount":5},"items":[` + items + `{}]}`
	meta, rest, err := readListMeta(strings.NewReader(body))
	if err != nil {
		t.Fatalf("readListMeta: %v", err)
	}
	if meta.ResourceVersion != "123" || meta.Continue != "tok" {
		t.Fatalf("meta = %+v, want resourceVersion 123 and continue tok", meta)
	}
	remaining, err := io.ReadAll(rest)
	if err != nil {
		t.Fatal(err)
	}
	// Whatever the decoder buffered plus the unread body must be exactly the rest of the list.
	if !strings.HasSuffix(body, string(remaining)) || !strings.Contains(string(remaining), `"items"`) {
		t.Fatalf("rest of body is not the unread remainder: %.80q", remaining)
	}
}

func TestReadListMetaRejectsNonLists(t *testing.T) {
	for name, body := range map[string]string{
		"not json":         "<html>",
		"items first":      `{"items":[],"metadata":{}}`,
		"no metadata":      `{"kind":"PodList"}`,
		"truncated":        `{"kind":"Pod`,
		"array not object": `[1,2]`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := readListMeta(strings.NewReader(body)); err == nil {
				t.Fatalf("readListMeta(%q) succeeded", body)
			}
		})
	}
}
