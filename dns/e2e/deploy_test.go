package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
)

// decodeAll decodes every document of a multi-document YAML manifest.
func decodeAll(t *testing.T, data []byte) []runtime.Object {
	t.Helper()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []runtime.Object
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, obj)
	}
}

// create creates one object of the kinds deploy/dns uses.
func create(ctx context.Context, obj runtime.Object, opts metav1.CreateOptions) error {
	var err error
	switch o := obj.(type) {
	case *corev1.ServiceAccount:
		_, err = lab.Client.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, opts)
	case *rbacv1.ClusterRole:
		_, err = lab.Client.RbacV1().ClusterRoles().Create(ctx, o, opts)
	case *rbacv1.ClusterRoleBinding:
		_, err = lab.Client.RbacV1().ClusterRoleBindings().Create(ctx, o, opts)
	case *appsv1.DaemonSet:
		_, err = lab.Client.AppsV1().DaemonSets(o.Namespace).Create(ctx, o, opts)
	default:
		err = fmt.Errorf("unexpected %T in deploy/dns", obj)
	}
	return err
}

func remove(ctx context.Context, obj runtime.Object) error {
	switch o := obj.(type) {
	case *corev1.ServiceAccount:
		return lab.Client.CoreV1().ServiceAccounts(o.Namespace).Delete(ctx, o.Name, metav1.DeleteOptions{})
	case *rbacv1.ClusterRole:
		return lab.Client.RbacV1().ClusterRoles().Delete(ctx, o.Name, metav1.DeleteOptions{})
	case *rbacv1.ClusterRoleBinding:
		return lab.Client.RbacV1().ClusterRoleBindings().Delete(ctx, o.Name, metav1.DeleteOptions{})
	case *appsv1.DaemonSet:
		return lab.Client.AppsV1().DaemonSets(o.Namespace).Delete(ctx, o.Name, metav1.DeleteOptions{})
	}
	return fmt.Errorf("unexpected %T in deploy/dns", obj)
}

// TestDeployManifestsAreAcceptedByTheAPIServer creates every object of deploy/dns with
// dryRun=All, so the API server validates them fully without keeping them.
func TestDeployManifestsAreAcceptedByTheAPIServer(t *testing.T) {
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
		for _, obj := range decodeAll(t, data) {
			kind := fmt.Sprintf("%T", obj)
			kinds[kind] = true
			if ds, ok := obj.(*appsv1.DaemonSet); ok {
				if !ds.Spec.Template.Spec.HostNetwork || ds.Spec.Template.Spec.PriorityClassName != "system-node-critical" {
					t.Errorf("DaemonSet must run on the host network at system-node-critical")
				}
			}
			if err := create(context.Background(), obj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Fatalf("%s %s: %v", file, kind, err)
			}
		}
	}
	for _, k := range []string{"*v1.ServiceAccount", "*v1.ClusterRole", "*v1.ClusterRoleBinding", "*v1.DaemonSet"} {
		if !kinds[k] {
			t.Errorf("deploy/dns has no %s", k)
		}
	}
}
