package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
)

// TestDeployManifestsAreAcceptedByTheAPIServer creates every object of deploy/dns with
// dryRun=All, so the API server validates them fully without keeping them.
func TestDeployManifestsAreAcceptedByTheAPIServer(t *testing.T) {
	ctx := context.Background()
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	files, err := filepath.Glob("../../deploy/dns/*.yaml")
	if err != nil || len(files) < 2 {
		t.Fatalf("manifests: %v %v", files, err)
	}
	kinds := map[string]bool{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		reader := utilyaml.NewYAMLReader(bufioReader(data))
		for {
			doc, err := reader.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			obj, gvk, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			kinds[gvk.Kind] = true
			switch o := obj.(type) {
			case *corev1.ServiceAccount:
				_, err = lab.Client.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, dry)
			case *rbacv1.ClusterRole:
				_, err = lab.Client.RbacV1().ClusterRoles().Create(ctx, o, dry)
			case *rbacv1.ClusterRoleBinding:
				_, err = lab.Client.RbacV1().ClusterRoleBindings().Create(ctx, o, dry)
			case *appsv1.DaemonSet:
				if !o.Spec.Template.Spec.HostNetwork || o.Spec.Template.Spec.PriorityClassName != "system-node-critical" {
					t.Errorf("DaemonSet must run on the host network at system-node-critical")
				}
				_, err = lab.Client.AppsV1().DaemonSets(o.Namespace).Create(ctx, o, dry)
			default:
				t.Fatalf("%s: unexpected %s", file, gvk)
			}
			if err != nil {
				t.Fatalf("%s %s: %v", file, gvk.Kind, err)
			}
		}
	}
	for _, k := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet"} {
		if !kinds[k] {
			t.Errorf("deploy/dns has no %s", k)
		}
	}
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
