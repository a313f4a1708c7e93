// Package deploy holds bulkhead's manifests; its tests hold them to their documentation.
package deploy_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/bulkhead-dev/bulkhead/internal/manifests"
	"github.com/bulkhead-dev/bulkhead/internal/rbacdoc"
)

func read(t *testing.T) []manifests.File {
	t.Helper()
	files, err := manifests.Read(".")
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// deploy/README.md documents every role the manifests outside breakglass/ create, exactly.
func TestREADMERBACTablesAreTheManifestsRoles(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	tables, err := rbacdoc.Tables(string(data))
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string][]string{}
	for _, f := range read(t) {
		if strings.HasPrefix(f.Path, "breakglass/") {
			continue
		}
		for _, o := range f.Objects {
			switch r := o.(type) {
			case *rbacv1.ClusterRole:
				roles["ClusterRole "+r.Name] = rbacdoc.Expand(r.Rules)
			case *rbacv1.Role:
				roles["Role "+r.Name] = rbacdoc.Expand(r.Rules)
			}
		}
	}
	if len(roles) == 0 {
		t.Fatal("no roles found in deploy/")
	}
	for _, d := range rbacdoc.Diff(tables, roles) {
		t.Error("deploy/README.md: " + d)
	}
}

// Every image is pinned to a release, never :latest or untagged.
func TestImagesArePinned(t *testing.T) {
	checked := 0
	for _, f := range read(t) {
		for _, o := range f.Objects {
			tmpl, ok := manifests.PodTemplate(o)
			if !ok {
				continue
			}
			for _, c := range append(slices.Clone(tmpl.Spec.InitContainers), tmpl.Spec.Containers...) {
				checked++
				name := c.Image[strings.LastIndex(c.Image, "/")+1:]
				if !strings.ContainsAny(name, ":@") || strings.HasSuffix(c.Image, ":latest") {
					t.Errorf("%s: container %s runs %s, not a pinned release", f.Path, c.Name, c.Image)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no containers found in deploy/")
	}
}
