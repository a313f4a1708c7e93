package breakglass

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	flowcontrolclient "k8s.io/client-go/kubernetes/typed/flowcontrol/v1"

	"github.com/bulkhead-dev/bulkhead/apf"
)

// InstalledOperatorsGroup reads the operators' group from the installed lane; "" when
// break-glass is not installed.
func InstalledOperatorsGroup(ctx context.Context, fc flowcontrolclient.FlowcontrolV1Interface) (string, error) {
	fs, err := fc.FlowSchemas().Get(ctx, LaneName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("read the break-glass flow schema: %w", err)
	}
	return fs.Annotations[OperatorsGroupAnnotation], nil
}

// ShedResult is what ShedIdentity did.
type ShedResult struct {
	Shed   Shed
	Action Action // Created, or Updated when the identity was already jailed
	// Warning is set when a forced shed cannot take effect (see Protection.Ineffective).
	Warning string
}

// ShedIdentity jails req.Identity: first the level, then the FlowSchema that sends the identity there,
// so the schema never points at a missing level. The guard rails apply again, now with the
// installed operators' group; req.Force lifts only the soft ones, and the API server's policy
// holds the same rails for whoever writes a shed.
func ShedIdentity(ctx context.Context, fc flowcontrolclient.FlowcontrolV1Interface, req ShedRequest, by string, now time.Time) (ShedResult, error) {
	group, err := InstalledOperatorsGroup(ctx, fc)
	if err != nil {
		return ShedResult{}, err
	}
	protection := Guard(req.Identity, group)
	if err := protection.Err(req.Identity, req.Force); err != nil {
		return ShedResult{}, err
	}
	level, schema, err := ShedObjects(req, by, now)
	if err != nil {
		return ShedResult{}, err
	}
	result := ShedResult{Action: Created, Shed: ShedFromSchema(schema)}
	if protection.Ineffective != "" {
		result.Warning = "this shed has no effect: " + protection.Ineffective
	}
	switch _, err := fc.FlowSchemas().Get(ctx, schema.Name, metav1.GetOptions{}); {
	case err == nil:
		result.Action = Updated
	case !apierrors.IsNotFound(err):
		return ShedResult{}, fmt.Errorf("read flow schema %s: %w", schema.Name, err)
	}
	if _, err := apf.ApplyPriorityLevel(ctx, fc, level); err != nil {
		return ShedResult{}, err
	}
	if _, err := apf.ApplyFlowSchema(ctx, fc, schema); err != nil {
		return ShedResult{}, err
	}
	return result, nil
}

// Unshed removes the jail name: the FlowSchema first, so the identity's requests go back to
// their usual level before the jail disappears. A name that is not a shed is an error and
// nothing is deleted.
func Unshed(ctx context.Context, fc flowcontrolclient.FlowcontrolV1Interface, name string) (Shed, error) {
	fs, err := fc.FlowSchemas().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return Shed{}, fmt.Errorf("no shed named %q (bulkhead shed list shows them)", name)
	case err != nil:
		return Shed{}, fmt.Errorf("read flow schema %s: %w", name, err)
	case !apf.IsManaged(fs) || fs.Labels[apf.PurposeLabel] != string(apf.PurposeShed):
		return Shed{}, fmt.Errorf("%q is not a shed (it has no %s=%s label); unshed removes only what bulkhead shed created",
			name, apf.PurposeLabel, apf.PurposeShed)
	}
	if err := removeJail(ctx, fc, name); err != nil {
		return Shed{}, err
	}
	return ShedFromSchema(fs), nil
}

func removeJail(ctx context.Context, fc flowcontrolclient.FlowcontrolV1Interface, name string) error {
	if err := apf.DeleteFlowSchema(ctx, fc, name); err != nil {
		return err
	}
	return apf.DeletePriorityLevel(ctx, fc, name)
}

// ListSheds reads every shed from the cluster (a label-selected list of FlowSchemas, a handful
// of objects).
func ListSheds(ctx context.Context, fc flowcontrolclient.FlowcontrolV1Interface) ([]Shed, error) {
	list, err := fc.FlowSchemas().List(ctx, metav1.ListOptions{LabelSelector: apf.ManagedSelector(apf.PurposeShed)})
	if err != nil {
		return nil, fmt.Errorf("list sheds: %w", err)
	}
	sheds := make([]Shed, 0, len(list.Items))
	for i := range list.Items {
		sheds = append(sheds, ShedFromSchema(&list.Items[i]))
	}
	SortSheds(sheds)
	return sheds, nil
}

// RemoveExpiredSheds deletes every shed whose lifetime is over at now and returns them, with the
// sheds still in force. Every bulkhead command that talks to the cluster calls it, so an
// expired jail does not outlive the next bulkhead command (there is no controller yet).
func RemoveExpiredSheds(ctx context.Context, fc flowcontrolclient.FlowcontrolV1Interface, now time.Time) (removed, remaining []Shed, err error) {
	sheds, err := ListSheds(ctx, fc)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range sheds {
		if !s.Expired(now) {
			remaining = append(remaining, s)
			continue
		}
		if err := removeJail(ctx, fc, s.Name); err != nil {
			return removed, nil, fmt.Errorf("remove expired shed %s: %w", s.Name, err)
		}
		removed = append(removed, s)
	}
	return removed, remaining, nil
}
