package execute

import (
	"context"
	"fmt"
	"math"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/bulkhead-dev/bulkhead/apf"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// BudgetSeats is the share of a server's seats a --budget percentage allows: at least one.
func BudgetSeats(serverSeats int, percent float64) (int, error) {
	if serverSeats <= 0 {
		return 0, fmt.Errorf("server capacity %d seats must be positive", serverSeats)
	}
	if percent <= 0 || percent > 100 || math.IsNaN(percent) {
		return 0, fmt.Errorf("budget %v%% must be within (0, 100]", percent)
	}
	return max(1, int(math.Floor(float64(serverSeats)*percent/100))), nil
}

// LaneObjects builds the lane of a DaemonSet whose pods run as sa: a Limited level of the given
// shares that neither lends nor borrows — the agents get exactly their budget, and others keep
// theirs — and a FlowSchema sending every request of sa to it.
func LaneObjects(lane state.Lane, owner string, sa apf.Subject, shares int32) (*flowcontrolv1.PriorityLevelConfiguration, *flowcontrolv1.FlowSchema, error) {
	own := apf.Ownership{Purpose: apf.PurposeRolloutLane, Owner: owner}
	noBorrowing := int32(0)
	pl, err := apf.PriorityLevel(apf.LevelSpec{Name: lane.PriorityLevel, Shares: shares, BorrowingLimitPercent: &noBorrowing}, own)
	if err != nil {
		return nil, nil, fmt.Errorf("lane: %w", err)
	}
	fs, err := apf.FlowSchema(apf.SchemaSpec{Name: lane.FlowSchema, Level: lane.PriorityLevel,
		Precedence: apf.PrecedenceRolloutLane, Subjects: []apf.Subject{sa}}, own)
	if err != nil {
		return nil, nil, fmt.Errorf("lane: %w", err)
	}
	return pl, fs, nil
}

// SqueezedLane is the lane during a rollback: Reject with zero shares, so the agents' requests
// are refused at once and their load stops before any pod is touched.
func SqueezedLane(lane state.Lane, owner string) (*flowcontrolv1.PriorityLevelConfiguration, error) {
	noBorrowing := int32(0)
	return apf.PriorityLevel(apf.LevelSpec{Name: lane.PriorityLevel, Shares: 0, Reject: true, BorrowingLimitPercent: &noBorrowing},
		apf.Ownership{Purpose: apf.PurposeRolloutLane, Owner: owner})
}

// EnsureLane sizes the lane to budgetSeats of a server of serverSeats and applies it, level
// first so the FlowSchema never points at a missing level. Applying it again changes nothing.
// It returns the seats the lane actually gets (NominalCL rounds up).
func EnsureLane(ctx context.Context, client kubernetes.Interface, lane state.Lane, owner string, sa apf.Subject, serverSeats, budgetSeats int) (int, error) {
	levels, err := client.FlowcontrolV1().PriorityLevelConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, fmt.Errorf("read priority levels to size the lane: %w", err)
	}
	others := apf.SumShares(levels.Items, lane.PriorityLevel)
	shares, err := apf.SharesForSeats(serverSeats, others, budgetSeats)
	if err != nil {
		return 0, fmt.Errorf("size the lane: %w", err)
	}
	pl, fs, err := LaneObjects(lane, owner, sa, shares)
	if err != nil {
		return 0, err
	}
	if _, err := apf.ApplyPriorityLevel(ctx, client.FlowcontrolV1(), pl); err != nil {
		return 0, err
	}
	if _, err := apf.ApplyFlowSchema(ctx, client.FlowcontrolV1(), fs); err != nil {
		return 0, err
	}
	return apf.NominalSeats(serverSeats, shares, others+int64(shares)), nil
}

// EnsureObserveLane is an observed rollout's lane: a FlowSchema of the rollout's name that sends
// the agents to the level they reach anyway (apf.LevelFor over every other schema but rollout
// lanes), so that APF labels their requests with a schema of their own — which is all the
// measurement needs — and nothing queues or limits them differently. It returns the lane, its
// level the shared one.
func EnsureObserveLane(ctx context.Context, client kubernetes.Interface, name, owner string, sa apf.Subject) (state.Lane, error) {
	schemas, err := client.FlowcontrolV1().FlowSchemas().List(ctx, metav1.ListOptions{})
	if err != nil {
		return state.Lane{}, fmt.Errorf("read flow schemas to find the agents' level: %w", err)
	}
	level, _, err := apf.LevelFor(schemas.Items, sa, func(fs *flowcontrolv1.FlowSchema) bool {
		return fs.Name == name || fs.Labels[apf.PurposeLabel] == string(apf.PurposeRolloutLane)
	})
	if err != nil {
		return state.Lane{}, fmt.Errorf("observe lane: %w", err)
	}
	lane := state.Lane{FlowSchema: name, PriorityLevel: level, Shared: true}
	fs, err := apf.FlowSchema(apf.SchemaSpec{Name: name, Level: level, Precedence: apf.PrecedenceRolloutLane, Subjects: []apf.Subject{sa}},
		apf.Ownership{Purpose: apf.PurposeRolloutLane, Owner: owner})
	if err != nil {
		return state.Lane{}, fmt.Errorf("observe lane: %w", err)
	}
	if _, err := apf.ApplyFlowSchema(ctx, client.FlowcontrolV1(), fs); err != nil {
		return state.Lane{}, err
	}
	return lane, nil
}

// SqueezeLane turns the lane into a rejecting jail; a lane that is already gone stays gone, and
// a shared level (observe mode, which never rolls back) is never squeezed.
func SqueezeLane(ctx context.Context, client kubernetes.Interface, lane state.Lane, owner string) error {
	if lane.Shared {
		return nil
	}
	pl, err := SqueezedLane(lane, owner)
	if err != nil {
		return err
	}
	if _, err := client.FlowcontrolV1().FlowSchemas().Get(ctx, lane.FlowSchema, metav1.GetOptions{}); err != nil {
		if isNotFound(err) {
			return nil // no schema routes to the lane: nothing to squeeze
		}
		return fmt.Errorf("read lane flow schema: %w", err)
	}
	if _, err := apf.ApplyPriorityLevel(ctx, client.FlowcontrolV1(), pl); err != nil {
		return fmt.Errorf("squeeze lane: %w", err)
	}
	return nil
}

// DeleteLane removes the FlowSchema first (requests fall back to their usual schema), then
// the level, unless the lane shares it (observe mode).
func DeleteLane(ctx context.Context, client kubernetes.Interface, lane state.Lane) error {
	if err := apf.DeleteFlowSchema(ctx, client.FlowcontrolV1(), lane.FlowSchema); err != nil || lane.Shared {
		return err
	}
	return apf.DeletePriorityLevel(ctx, client.FlowcontrolV1(), lane.PriorityLevel)
}
