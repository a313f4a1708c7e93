package execute

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// ParseManifest reads exactly one apps/v1 DaemonSet from YAML or JSON. namespace fills a
// manifest without one ("default" when empty too); when explicit (-n was given) the manifest's
// own namespace must agree with it.
func ParseManifest(data []byte, namespace string, explicit bool) (*appsv1.DaemonSet, error) {
	docs, err := documents(data)
	if err != nil {
		return nil, err
	}
	if len(docs) != 1 {
		return nil, fmt.Errorf("manifest: want exactly one DaemonSet, found %d documents", len(docs))
	}
	kind, err := kindOf(docs[0])
	if err != nil {
		return nil, err
	}
	if !isDaemonSet(kind) {
		return nil, fmt.Errorf("manifest is a %q of %q, not an apps/v1 DaemonSet", kind.Kind, kind.APIVersion)
	}
	return parseDaemonSet(docs[0], namespace, explicit)
}

// documents splits a YAML stream (or one JSON document) into its non-empty documents.
func documents(data []byte) ([][]byte, error) {
	dec := utilyaml.NewDocumentDecoder(io.NopCloser(bytes.NewReader(data)))
	defer dec.Close()
	var docs [][]byte
	buf := make([]byte, len(data)+1)
	for {
		n, err := dec.Read(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		if doc := bytes.TrimSpace(buf[:n]); len(doc) > 0 && !onlyComments(doc) {
			docs = append(docs, append([]byte(nil), doc...))
		}
	}
	return docs, nil
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

func kindOf(doc []byte) (typeMeta, error) {
	var meta typeMeta
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return meta, fmt.Errorf("manifest is not valid YAML: %w", err)
	}
	return meta, nil
}

func isDaemonSet(t typeMeta) bool {
	gv, err := schema.ParseGroupVersion(t.APIVersion)
	return err == nil && t.Kind == "DaemonSet" && gv == appsv1.SchemeGroupVersion
}

func parseDaemonSet(doc []byte, namespace string, explicit bool) (*appsv1.DaemonSet, error) {
	var ds appsv1.DaemonSet
	if err := yaml.UnmarshalStrict(doc, &ds); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	switch {
	case ds.Name == "":
		return nil, fmt.Errorf("manifest: the DaemonSet has no metadata.name")
	case ds.Spec.Selector == nil:
		return nil, fmt.Errorf("manifest: DaemonSet %s has no spec.selector", ds.Name)
	case explicit && ds.Namespace != "" && ds.Namespace != namespace:
		return nil, fmt.Errorf("manifest: DaemonSet %s is in namespace %q, but -n asks for %q", ds.Name, ds.Namespace, namespace)
	}
	ds.Namespace = defaultNamespace(ds.Namespace, namespace)
	return &ds, nil
}

// defaultNamespace is an object's namespace: its own, else -n or the kubeconfig's, else
// "default".
func defaultNamespace(own, given string) string {
	switch {
	case own != "":
		return own
	case given != "":
		return given
	}
	return "default"
}

func onlyComments(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if l := bytes.TrimSpace(line); len(l) > 0 && l[0] != '#' {
			return false
		}
	}
	return true
}
