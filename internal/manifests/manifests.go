// Package manifests reads the YAML manifests under deploy/ as typed objects, for the tests that
// hold them to their documentation and to the API server's Pod Security admission.
package manifests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
)

// File is one manifest: its path relative to the directory read, and its objects in order.
type File struct {
	Path    string
	Objects []runtime.Object
}

// Read decodes every document of every .yaml file under dir, in path order: built-in kinds as
// their typed objects, others (the controller's CustomResourceDefinitions) as Unstructured.
// Kustomize's own files (kind Kustomization) are not API objects and are left out.
func Read(dir string) ([]File, error) {
	var files []File
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".yaml" {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		f := File{Path: filepath.ToSlash(rel)}
		for _, doc := range strings.Split(string(data), "\n---") {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			raw, err := utilyaml.ToJSON([]byte(doc))
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(raw, nil, nil)
			if runtime.IsNotRegisteredError(err) {
				u := &unstructured.Unstructured{}
				if err = u.UnmarshalJSON(raw); err == nil && u.GetKind() == "Kustomization" {
					continue
				}
				obj = u
			}
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			f.Objects = append(f.Objects, obj)
		}
		if len(f.Objects) > 0 {
			files = append(files, f)
		}
		return nil
	})
	return files, err
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// PodTemplate is the pod a workload object makes (a Pod is its own), or false for other kinds.
func PodTemplate(o runtime.Object) (*corev1.PodTemplateSpec, bool) {
	switch w := o.(type) {
	case *corev1.Pod:
		return &corev1.PodTemplateSpec{ObjectMeta: w.ObjectMeta, Spec: w.Spec}, true
	case *appsv1.DaemonSet:
		return &w.Spec.Template, true
	case *appsv1.Deployment:
		return &w.Spec.Template, true
	case *appsv1.StatefulSet:
		return &w.Spec.Template, true
	case *appsv1.ReplicaSet:
		return &w.Spec.Template, true
	case *batchv1.Job:
		return &w.Spec.Template, true
	case *batchv1.CronJob:
		return &w.Spec.JobTemplate.Spec.Template, true
	}
	return nil, false
}
