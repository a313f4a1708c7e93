package rbacdoc

import (
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

func TestTablesReadWhatExpandWrites(t *testing.T) {
	md := "The role, ClusterRole `agent`:\n\n" +
		"| API group | resources | verbs | why |\n|---|---|---|---|\n" +
		"| `apps` | daemonsets, controllerrevisions | get, list | read |\n" +
		"| core | serviceaccounts/token (`bulkhead`, `other` only) | create | mint |\n" +
		"| non-resource URL | `/metrics` | get | scrape |\n\n" +
		"| flag | meaning |\n|---|---|\n| --x | not RBAC |\n\n" +
		"Role `finder` in `default`:\n\n| API group | resources | verbs | why |\n|---|---|---|---|\n| `discovery.k8s.io` | endpointslices | watch | find |\n"
	tables, err := Tables(md)
	if err != nil {
		t.Fatal(err)
	}
	want := Expand([]rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"daemonsets", "controllerrevisions"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, ResourceNames: []string{"bulkhead", "other"}, Verbs: []string{"create"}},
		{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}},
	})
	if !slices.Equal(tables["ClusterRole agent"], want) {
		t.Fatalf("agent:\n%v\nwant\n%v", tables["ClusterRole agent"], want)
	}
	if got := tables["Role finder"]; !slices.Equal(got, []string{"discovery.k8s.io endpointslices watch"}) {
		t.Fatalf("finder: %v", got)
	}
	if len(tables) != 2 {
		t.Fatalf("tables: %v", tables)
	}
}
