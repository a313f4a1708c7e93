package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/bulkhead-dev/bulkhead/controller/hold"
	manifests "github.com/bulkhead-dev/bulkhead/deploy/controller"
)

// Install applies deploy/controller's manifests (server-side apply, field manager bulkhead):
// the namespace, the RolloutPolicy CRD, the controller's identity and RBAC, the admission
// policies and the Deployment running image. It waits for the CRD to be served before the
// admission policy that takes RolloutPolicies as parameters. Applying again changes nothing.
func Install(ctx context.Context, cfg *rest.Config, image string) ([]string, error) {
	objs, err := manifests.Objects(image)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	cached := memory.NewMemCacheClient(disc)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(cached)
	var done []string
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			cached.Invalidate() // a kind served by a CRD applied a moment ago
			mapping, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		}
		if err != nil {
			return done, fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err)
		}
		var res dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			res = dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
		}
		data, err := json.Marshal(obj)
		if err != nil {
			return done, fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err)
		}
		force := true
		if _, err := res.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: hold.FieldManager, Force: &force}); err != nil {
			return done, fmt.Errorf("apply %s %s: %w", gvk.Kind, obj.GetName(), err)
		}
		done = append(done, fmt.Sprintf("%s %s applied", gvk.Kind, qualified(obj)))
		if gvk.Kind == "CustomResourceDefinition" {
			if err := waitEstablished(ctx, dyn, obj.GetName()); err != nil {
				return done, err
			}
			cached.Invalidate()
		}
	}
	return done, nil
}

func qualified(o *unstructured.Unstructured) string {
	if o.GetNamespace() == "" {
		return o.GetName()
	}
	return o.GetNamespace() + "/" + o.GetName()
}

func waitEstablished(ctx context.Context, dyn dynamic.Interface, name string) error {
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		u, err := crds.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("CRD %s not established: %w", name, err)
	}
	return nil
}
