package execute

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

// Bundle is what `rollout apply -f` reads, the way agents ship: one YAML stream (a Helm chart's
// output, say) with the agent's ServiceAccount, RBAC, ConfigMaps and its DaemonSet. Exactly one
// DaemonSet gets the guarded rollout; the other objects are applied before it starts.
type Bundle struct {
	DaemonSet *appsv1.DaemonSet
	// Others are the other objects, in the order the file gives them.
	Others []*unstructured.Unstructured
}

// ParseBundle reads a bundle from YAML or JSON (List kinds are flattened). namespace fills
// objects without one, as kubectl does; when explicit (-n was given) an object's own namespace
// must agree with it.
func ParseBundle(data []byte, namespace string, explicit bool) (*Bundle, error) {
	docs, err := documents(data)
	if err != nil {
		return nil, err
	}
	b := &Bundle{}
	var daemonSets []string
	var add func(doc []byte) error
	add = func(doc []byte) error {
		t, err := kindOf(doc)
		if err != nil {
			return err
		}
		switch {
		case isDaemonSet(t):
			ds, err := parseDaemonSet(doc, namespace, explicit)
			if err != nil {
				return err
			}
			daemonSets = append(daemonSets, ds.Namespace+"/"+ds.Name)
			b.DaemonSet = ds
			return nil
		case t.Kind == "DaemonSet":
			return fmt.Errorf("manifest: DaemonSet of %q: only apps/v1 DaemonSets are served since Kubernetes 1.16", t.APIVersion)
		}
		obj, err := parseObject(doc)
		if err != nil {
			return err
		}
		if obj.IsList() {
			return obj.EachListItem(func(item runtime.Object) error {
				raw, err := json.Marshal(item)
				if err != nil {
					return fmt.Errorf("manifest: %s item: %w", t.Kind, err)
				}
				return add(raw)
			})
		}
		if ns := obj.GetNamespace(); explicit && ns != "" && ns != namespace {
			return fmt.Errorf("manifest: %s %s is in namespace %q, but -n asks for %q", obj.GetKind(), obj.GetName(), ns, namespace)
		}
		b.Others = append(b.Others, obj)
		return nil
	}
	for _, doc := range docs {
		if err := add(doc); err != nil {
			return nil, err
		}
	}
	switch {
	case len(daemonSets) == 0:
		return nil, fmt.Errorf("manifest: no apps/v1 DaemonSet among its %d objects (%s); rollout apply rolls out exactly one", len(b.Others), kinds(b.Others))
	case len(daemonSets) > 1:
		return nil, fmt.Errorf("manifest: %d DaemonSets (%s); exactly one gets a guarded rollout: put each in a file of its own", len(daemonSets), strings.Join(daemonSets, ", "))
	}
	return b, nil
}

func parseObject(doc []byte) (*unstructured.Unstructured, error) {
	raw, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("manifest is not valid YAML: %w", err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if !obj.IsList() && obj.GetName() == "" {
		return nil, fmt.Errorf("manifest: a %s without metadata.name (server-side apply needs a name)", obj.GetKind())
	}
	return obj, nil
}

func kinds(objs []*unstructured.Unstructured) string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+" "+o.GetName())
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// Applier writes a bundle's objects by server-side apply, as the field manager bulkhead.
type Applier struct {
	Dynamic dynamic.Interface
	Mapper  meta.RESTMapper
	// Namespace fills namespaced objects without one.
	Namespace string
}

// Check dry-runs every object of b on the server, the DaemonSet included: schema, admission
// (policies, Pod Security) and immutable fields are checked before anything changes. An object
// in a namespace the bundle itself creates cannot be checked before that namespace exists; such
// objects are returned and checked by the API server when applied.
func (a *Applier) Check(ctx context.Context, b *Bundle) (deferred []string, err error) {
	ds, err := toUnstructured(b.DaemonSet)
	if err != nil {
		return nil, err
	}
	created := map[string]bool{}
	for _, o := range b.Others {
		if o.GetKind() == "Namespace" && o.GroupVersionKind().Group == "" {
			created[o.GetName()] = true
		}
	}
	for _, o := range append(ordered(b.Others), ds) {
		name, err := a.apply(ctx, o, true)
		if apierrors.IsNotFound(err) && created[a.namespaceOf(o)] {
			deferred = append(deferred, name)
			continue
		}
		if err != nil {
			return deferred, err
		}
	}
	return deferred, nil
}

// ApplyOthers applies every object of b but the DaemonSet, namespaces and CRDs first, then in
// the file's order, and names each one applied.
func (a *Applier) ApplyOthers(ctx context.Context, b *Bundle) ([]string, error) {
	var applied []string
	for _, o := range ordered(b.Others) {
		name, err := a.apply(ctx, o, false)
		if err != nil {
			return applied, err
		}
		applied = append(applied, name)
	}
	return applied, nil
}

// ordered puts namespaces, then CRDs, first; the rest keeps the file's order.
func ordered(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	rank := func(o *unstructured.Unstructured) int {
		switch o.GetKind() {
		case "Namespace":
			return 0
		case "CustomResourceDefinition":
			return 1
		}
		return 2
	}
	out := slices.Clone(objs)
	slices.SortStableFunc(out, func(x, y *unstructured.Unstructured) int { return rank(x) - rank(y) })
	return out
}

func (a *Applier) apply(ctx context.Context, o *unstructured.Unstructured, dryRun bool) (string, error) {
	gvk := o.GroupVersionKind()
	mapping, err := a.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return "", fmt.Errorf("%s %s: the API server does not serve %s (if its CRD is in the same file, apply the CRD first): %w",
			gvk.Kind, o.GetName(), gvk.GroupVersion(), err)
	}
	obj := o.DeepCopy()
	var res dynamic.ResourceInterface
	name := gvk.Kind + " " + obj.GetName()
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		obj.SetNamespace(defaultNamespace(obj.GetNamespace(), a.Namespace))
		res = a.Dynamic.Resource(mapping.Resource).Namespace(obj.GetNamespace())
		name = gvk.Kind + " " + obj.GetNamespace() + "/" + obj.GetName()
	} else {
		obj.SetNamespace("") // a namespace on a cluster-scoped object means nothing
		res = a.Dynamic.Resource(mapping.Resource)
	}
	data, err := obj.MarshalJSON()
	if err != nil {
		return name, fmt.Errorf("encode %s: %w", name, err)
	}
	force := true
	opts := metav1.PatchOptions{FieldManager: fieldManager, Force: &force}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	if _, err := res.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, opts); err != nil {
		if dryRun {
			return name, fmt.Errorf("%s is refused by the API server (dry run; nothing was changed): %w", name, err)
		}
		return name, fmt.Errorf("apply %s: %w", name, err)
	}
	return name, nil
}

func (a *Applier) namespaceOf(o *unstructured.Unstructured) string {
	return defaultNamespace(o.GetNamespace(), a.Namespace)
}

func toUnstructured(ds *appsv1.DaemonSet) (*unstructured.Unstructured, error) {
	fields, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ds)
	if err != nil {
		return nil, fmt.Errorf("DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	u := &unstructured.Unstructured{Object: fields}
	u.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("DaemonSet"))
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return u, nil
}
