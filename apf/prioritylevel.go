package apf

import (
	"fmt"
	"strings"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Queuing is a Limited level's queue shape. A bulkhead lane usually serves one identity (one
// flow), so shuffle sharding buys nothing there; DefaultLaneQueuing keeps it minimal.
type Queuing struct {
	Queues           int32
	HandSize         int32
	QueueLengthLimit int32
}

// DefaultLaneQueuing suits a level that serves a single flow: one queue, 50 requests deep
// (the API's default queue length).
var DefaultLaneQueuing = Queuing{Queues: 1, HandSize: 1, QueueLengthLimit: 50}

// maxQueues is kube-apiserver's validation limit on queuing.queues.
const maxQueues = 512

// LevelSpec describes a Limited PriorityLevelConfiguration.
type LevelSpec struct {
	Name string
	// Shares is nominalConcurrencyShares; 0 makes a jail that holds (almost) nothing.
	Shares int32
	// LendablePercent is how much of this level others may borrow (0..100).
	LendablePercent int32
	// BorrowingLimitPercent caps borrowing from others, as a percent of NominalCL; nil means
	// unlimited (the API's meaning), so lanes always set it.
	BorrowingLimitPercent *int32
	// Reject answers 429 at once instead of queueing when the level is full.
	Reject bool
	// Queuing applies when Reject is false; the zero value means DefaultLaneQueuing.
	Queuing Queuing
}

// PriorityLevel builds a Limited PriorityLevelConfiguration, or says what is wrong with spec.
func PriorityLevel(spec LevelSpec, own Ownership) (*flowcontrolv1.PriorityLevelConfiguration, error) {
	if err := validateName(spec.Name); err != nil {
		return nil, fmt.Errorf("priority level: %w", err)
	}
	if spec.Shares < 0 {
		return nil, fmt.Errorf("priority level %q: nominalConcurrencyShares %d must not be negative", spec.Name, spec.Shares)
	}
	if spec.LendablePercent < 0 || spec.LendablePercent > 100 {
		return nil, fmt.Errorf("priority level %q: lendablePercent %d must be within 0..100", spec.Name, spec.LendablePercent)
	}
	if spec.BorrowingLimitPercent != nil && *spec.BorrowingLimitPercent < 0 {
		return nil, fmt.Errorf("priority level %q: borrowingLimitPercent %d must not be negative", spec.Name, *spec.BorrowingLimitPercent)
	}
	limited := &flowcontrolv1.LimitedPriorityLevelConfiguration{
		NominalConcurrencyShares: ptr(spec.Shares),
		LendablePercent:          ptr(spec.LendablePercent),
		BorrowingLimitPercent:    copyPtr(spec.BorrowingLimitPercent),
	}
	if spec.Reject {
		limited.LimitResponse = flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeReject}
	} else {
		q := spec.Queuing
		if q == (Queuing{}) {
			q = DefaultLaneQueuing
		}
		if err := q.validate(); err != nil {
			return nil, fmt.Errorf("priority level %q: %w", spec.Name, err)
		}
		limited.LimitResponse = flowcontrolv1.LimitResponse{
			Type: flowcontrolv1.LimitResponseTypeQueue,
			Queuing: &flowcontrolv1.QueuingConfiguration{
				Queues:           q.Queues,
				HandSize:         q.HandSize,
				QueueLengthLimit: q.QueueLengthLimit,
			},
		}
	}
	return &flowcontrolv1.PriorityLevelConfiguration{
		TypeMeta:   typeMeta("PriorityLevelConfiguration"),
		ObjectMeta: own.objectMeta(spec.Name),
		Spec: flowcontrolv1.PriorityLevelConfigurationSpec{
			Type:    flowcontrolv1.PriorityLevelEnablementLimited,
			Limited: limited,
		},
	}, nil
}

// ExemptLevel builds an Exempt PriorityLevelConfiguration: requests mapped to it are never
// queued or rejected. Its shares still count in Σ NCS (they reserve seats others may not use
// unless lent), so break-glass can hold a few seats nominally without being limited.
func ExemptLevel(name string, shares, lendablePercent int32, own Ownership) (*flowcontrolv1.PriorityLevelConfiguration, error) {
	if err := validateName(name); err != nil {
		return nil, fmt.Errorf("exempt priority level: %w", err)
	}
	if shares < 0 {
		return nil, fmt.Errorf("exempt priority level %q: nominalConcurrencyShares %d must not be negative", name, shares)
	}
	if lendablePercent < 0 || lendablePercent > 100 {
		return nil, fmt.Errorf("exempt priority level %q: lendablePercent %d must be within 0..100", name, lendablePercent)
	}
	return &flowcontrolv1.PriorityLevelConfiguration{
		TypeMeta:   typeMeta("PriorityLevelConfiguration"),
		ObjectMeta: own.objectMeta(name),
		Spec: flowcontrolv1.PriorityLevelConfigurationSpec{
			Type: flowcontrolv1.PriorityLevelEnablementExempt,
			Exempt: &flowcontrolv1.ExemptPriorityLevelConfiguration{
				NominalConcurrencyShares: ptr(shares),
				LendablePercent:          ptr(lendablePercent),
			},
		},
	}, nil
}

func (q Queuing) validate() error {
	switch {
	case q.Queues <= 0 || q.Queues > maxQueues:
		return fmt.Errorf("queues %d must be within 1..%d", q.Queues, maxQueues)
	case q.HandSize <= 0 || q.HandSize > q.Queues:
		return fmt.Errorf("handSize %d must be within 1..queues (%d)", q.HandSize, q.Queues)
	case q.QueueLengthLimit <= 0:
		return fmt.Errorf("queueLengthLimit %d must be positive", q.QueueLengthLimit)
	}
	return nil
}

// validateName applies the API server's rule for FlowSchema and PriorityLevelConfiguration
// names (a DNS-1123 subdomain), so a bad name fails here rather than half-way through an apply.
func validateName(name string) error {
	if name == "" {
		return fmt.Errorf("name must not be empty")
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Errorf("name %q is invalid: %s", name, strings.Join(errs, "; "))
	}
	return nil
}

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: flowcontrolv1.SchemeGroupVersion.String(), Kind: kind}
}

func ptr[T any](v T) *T { return &v }

func copyPtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
