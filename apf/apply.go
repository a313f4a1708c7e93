package apf

import (
	"context"
	"encoding/json"
	"fmt"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	flowcontrolclient "k8s.io/client-go/kubernetes/typed/flowcontrol/v1"
)

// FieldManager is the server-side-apply manager name of every bulkhead write.
const FieldManager = "bulkhead"

// ApplyPriorityLevel creates or updates pl by server-side apply; applying the same object twice
// changes nothing. It refuses to take over a level of the same name that bulkhead does not own.
func ApplyPriorityLevel(ctx context.Context, c flowcontrolclient.FlowcontrolV1Interface, pl *flowcontrolv1.PriorityLevelConfiguration) (*flowcontrolv1.PriorityLevelConfiguration, error) {
	levels := c.PriorityLevelConfigurations()
	if err := checkOwned(ctx, "priority level", pl.Name, func(ctx context.Context, name string) (metav1.Object, error) {
		return levels.Get(ctx, name, metav1.GetOptions{})
	}); err != nil {
		return nil, err
	}
	data, err := json.Marshal(pl)
	if err != nil {
		return nil, fmt.Errorf("encode priority level %q: %w", pl.Name, err)
	}
	out, err := levels.Patch(ctx, pl.Name, types.ApplyPatchType, data, applyOptions())
	if err != nil {
		return nil, fmt.Errorf("apply priority level %q: %w", pl.Name, err)
	}
	return out, nil
}

// ApplyFlowSchema is ApplyPriorityLevel for FlowSchemas.
func ApplyFlowSchema(ctx context.Context, c flowcontrolclient.FlowcontrolV1Interface, fs *flowcontrolv1.FlowSchema) (*flowcontrolv1.FlowSchema, error) {
	schemas := c.FlowSchemas()
	if err := checkOwned(ctx, "flow schema", fs.Name, func(ctx context.Context, name string) (metav1.Object, error) {
		return schemas.Get(ctx, name, metav1.GetOptions{})
	}); err != nil {
		return nil, err
	}
	data, err := json.Marshal(fs)
	if err != nil {
		return nil, fmt.Errorf("encode flow schema %q: %w", fs.Name, err)
	}
	out, err := schemas.Patch(ctx, fs.Name, types.ApplyPatchType, data, applyOptions())
	if err != nil {
		return nil, fmt.Errorf("apply flow schema %q: %w", fs.Name, err)
	}
	return out, nil
}

// DeletePriorityLevel deletes a bulkhead-owned level; a level that is already gone is success.
func DeletePriorityLevel(ctx context.Context, c flowcontrolclient.FlowcontrolV1Interface, name string) error {
	levels := c.PriorityLevelConfigurations()
	return deleteOwned(ctx, "priority level", name,
		func(ctx context.Context, name string) (metav1.Object, error) {
			return levels.Get(ctx, name, metav1.GetOptions{})
		},
		func(ctx context.Context, name string, opts metav1.DeleteOptions) error {
			return levels.Delete(ctx, name, opts)
		})
}

// DeleteFlowSchema deletes a bulkhead-owned FlowSchema; one that is already gone is success.
func DeleteFlowSchema(ctx context.Context, c flowcontrolclient.FlowcontrolV1Interface, name string) error {
	schemas := c.FlowSchemas()
	return deleteOwned(ctx, "flow schema", name,
		func(ctx context.Context, name string) (metav1.Object, error) {
			return schemas.Get(ctx, name, metav1.GetOptions{})
		},
		func(ctx context.Context, name string, opts metav1.DeleteOptions) error {
			return schemas.Delete(ctx, name, opts)
		})
}

type getFunc func(ctx context.Context, name string) (metav1.Object, error)

func checkOwned(ctx context.Context, kind, name string, get getFunc) error {
	existing, err := get(ctx, name)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("read %s %q: %w", kind, name, err)
	case !IsManaged(existing):
		return fmt.Errorf("%s %q exists and is not managed by bulkhead (no %s=%s label); refusing to change it",
			kind, name, ManagedByLabel, ManagedByValue)
	}
	return nil
}

func deleteOwned(ctx context.Context, kind, name string, get getFunc, del func(context.Context, string, metav1.DeleteOptions) error) error {
	existing, err := get(ctx, name)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("read %s %q: %w", kind, name, err)
	case !IsManaged(existing):
		return fmt.Errorf("%s %q is not managed by bulkhead; refusing to delete it", kind, name)
	}
	// The UID precondition makes sure we delete the object we checked, not a successor.
	uid := existing.GetUID()
	err = del(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s %q: %w", kind, name, err)
	}
	return nil
}

func applyOptions() metav1.PatchOptions {
	force := true
	return metav1.PatchOptions{FieldManager: FieldManager, Force: &force}
}
