package apf

import (
	"reflect"
	"strings"
	"testing"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
)

var laneOwner = Ownership{Purpose: PurposeRolloutLane, Owner: "daemonset/obs/agent"}

func TestPriorityLevelBuildsALaneThatNeitherLendsNorBorrows(t *testing.T) {
	pl, err := PriorityLevel(LevelSpec{Name: "bulkhead-lane-obs.agent", Shares: 27, BorrowingLimitPercent: ptr(int32(0))}, laneOwner)
	if err != nil {
		t.Fatalf("PriorityLevel: %v", err)
	}
	want := flowcontrolv1.PriorityLevelConfigurationSpec{
		Type: flowcontrolv1.PriorityLevelEnablementLimited,
		Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{
			NominalConcurrencyShares: ptr(int32(27)),
			LendablePercent:          ptr(int32(0)),
			BorrowingLimitPercent:    ptr(int32(0)),
			LimitResponse: flowcontrolv1.LimitResponse{
				Type:    flowcontrolv1.LimitResponseTypeQueue,
				Queuing: &flowcontrolv1.QueuingConfiguration{Queues: 1, HandSize: 1, QueueLengthLimit: 50},
			},
		},
	}
	if !reflect.DeepEqual(pl.Spec, want) {
		t.Fatalf("spec = %+v\nwant %+v", pl.Spec, want)
	}
	if pl.APIVersion != "flowcontrol.apiserver.k8s.io/v1" || pl.Kind != "PriorityLevelConfiguration" {
		t.Fatalf("type meta = %s %s; server-side apply needs apiVersion and kind", pl.APIVersion, pl.Kind)
	}
	if !IsManaged(pl) || pl.Labels[PurposeLabel] != "rollout-lane" || pl.Annotations[OwnerAnnotation] != "daemonset/obs/agent" {
		t.Fatalf("ownership not stamped: labels %v annotations %v", pl.Labels, pl.Annotations)
	}
}

func TestPriorityLevelWithRejectHasNoQueuing(t *testing.T) {
	pl, err := PriorityLevel(LevelSpec{Name: "jail", Shares: 0, Reject: true, Queuing: Queuing{Queues: 64, HandSize: 8, QueueLengthLimit: 50}}, Ownership{Purpose: PurposeShed})
	if err != nil {
		t.Fatalf("PriorityLevel: %v", err)
	}
	lr := pl.Spec.Limited.LimitResponse
	if lr.Type != flowcontrolv1.LimitResponseTypeReject || lr.Queuing != nil {
		t.Fatalf("limit response = %+v, want Reject without queuing (the API forbids queuing with Reject)", lr)
	}
	if *pl.Spec.Limited.NominalConcurrencyShares != 0 {
		t.Fatalf("a jail keeps zero shares, got %d", *pl.Spec.Limited.NominalConcurrencyShares)
	}
	if pl.Annotations != nil {
		t.Fatalf("no owner and no annotations should leave annotations nil, got %v", pl.Annotations)
	}
}

func TestPriorityLevelRejectsBadSpecs(t *testing.T) {
	tests := []struct {
		name    string
		spec    LevelSpec
		wantErr string
	}{
		{"empty name", LevelSpec{Shares: 1}, "name must not be empty"},
		{"upper-case name", LevelSpec{Name: "Lane", Shares: 1}, `name "Lane" is invalid`},
		{"negative shares", LevelSpec{Name: "l", Shares: -1}, "nominalConcurrencyShares -1 must not be negative"},
		{"lendable over 100", LevelSpec{Name: "l", Shares: 1, LendablePercent: 101}, "lendablePercent 101 must be within 0..100"},
		{"negative borrowing", LevelSpec{Name: "l", Shares: 1, BorrowingLimitPercent: ptr(int32(-5))}, "borrowingLimitPercent -5"},
		{"hand larger than deck", LevelSpec{Name: "l", Shares: 1, Queuing: Queuing{Queues: 2, HandSize: 3, QueueLengthLimit: 1}}, "handSize 3 must be within 1..queues (2)"},
		{"too many queues", LevelSpec{Name: "l", Shares: 1, Queuing: Queuing{Queues: 513, HandSize: 1, QueueLengthLimit: 1}}, "queues 513 must be within 1..512"},
		{"no queue length", LevelSpec{Name: "l", Shares: 1, Queuing: Queuing{Queues: 1, HandSize: 1}}, "queueLengthLimit 0 must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl, err := PriorityLevel(tt.spec, laneOwner)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
			if pl != nil {
				t.Fatalf("got an object alongside the error")
			}
		})
	}
}

func TestExemptLevel(t *testing.T) {
	pl, err := ExemptLevel("bulkhead-break-glass", 5, 0, Ownership{Purpose: PurposeBreakGlass})
	if err != nil {
		t.Fatalf("ExemptLevel: %v", err)
	}
	if pl.Spec.Type != flowcontrolv1.PriorityLevelEnablementExempt || pl.Spec.Limited != nil ||
		*pl.Spec.Exempt.NominalConcurrencyShares != 5 || *pl.Spec.Exempt.LendablePercent != 0 {
		t.Fatalf("spec = %+v", pl.Spec)
	}
	if SharesOf(pl) != 5 {
		t.Fatalf("an exempt level's shares must count in the sum")
	}
	if _, err := ExemptLevel("bg", 1, 150, Ownership{}); err == nil || !strings.Contains(err.Error(), "lendablePercent 150") {
		t.Fatalf("lendablePercent 150: error = %v", err)
	}
}

func TestFlowSchemaMatchesEveryRequestOfItsSubjects(t *testing.T) {
	fs, err := FlowSchema(SchemaSpec{
		Name: "bulkhead-lane-obs.agent", Level: "bulkhead-lane-obs.agent", Precedence: PrecedenceRolloutLane,
		Subjects: []Subject{ServiceAccount("obs", "agent"), User("alice"), Group("sre")},
	}, laneOwner)
	if err != nil {
		t.Fatalf("FlowSchema: %v", err)
	}
	if fs.Spec.PriorityLevelConfiguration.Name != "bulkhead-lane-obs.agent" || fs.Spec.MatchingPrecedence != 850 || fs.Spec.DistinguisherMethod != nil {
		t.Fatalf("spec = %+v", fs.Spec)
	}
	wantSubjects := []flowcontrolv1.Subject{
		{Kind: flowcontrolv1.SubjectKindServiceAccount, ServiceAccount: &flowcontrolv1.ServiceAccountSubject{Namespace: "obs", Name: "agent"}},
		{Kind: flowcontrolv1.SubjectKindUser, User: &flowcontrolv1.UserSubject{Name: "alice"}},
		{Kind: flowcontrolv1.SubjectKindGroup, Group: &flowcontrolv1.GroupSubject{Name: "sre"}},
	}
	rule := fs.Spec.Rules[0]
	if !reflect.DeepEqual(rule.Subjects, wantSubjects) {
		t.Fatalf("subjects = %+v", rule.Subjects)
	}
	rr := rule.ResourceRules[0]
	if !reflect.DeepEqual(rr, flowcontrolv1.ResourcePolicyRule{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, ClusterScope: true, Namespaces: []string{"*"}}) {
		t.Fatalf("resource rule = %+v, want everything at every scope", rr)
	}
	if nr := rule.NonResourceRules[0]; nr.Verbs[0] != "*" || nr.NonResourceURLs[0] != "*" {
		t.Fatalf("non-resource rule = %+v, want everything", nr)
	}
}

func TestFlowSchemaByUserSetsTheDistinguisher(t *testing.T) {
	fs, err := FlowSchema(SchemaSpec{Name: "bg", Level: "bg", Precedence: 50, Subjects: []Subject{Group("ops")}, ByUser: true}, Ownership{Purpose: PurposeBreakGlass})
	if err != nil {
		t.Fatalf("FlowSchema: %v", err)
	}
	if fs.Spec.DistinguisherMethod == nil || fs.Spec.DistinguisherMethod.Type != flowcontrolv1.FlowDistinguisherMethodByUserType {
		t.Fatalf("distinguisher = %+v, want ByUser", fs.Spec.DistinguisherMethod)
	}
}

func TestFlowSchemaRejectsBadSpecs(t *testing.T) {
	sa := []Subject{ServiceAccount("obs", "agent")}
	tests := []struct {
		name    string
		spec    SchemaSpec
		wantErr string
	}{
		{"no level", SchemaSpec{Name: "f", Precedence: 850, Subjects: sa}, "priority level: name must not be empty"},
		{"precedence 1 belongs to exempt", SchemaSpec{Name: "f", Level: "l", Precedence: 1, Subjects: sa}, "matchingPrecedence 1 must be within 2..10000"},
		{"precedence too large", SchemaSpec{Name: "f", Level: "l", Precedence: 10001, Subjects: sa}, "matchingPrecedence 10001"},
		{"no subjects", SchemaSpec{Name: "f", Level: "l", Precedence: 850}, "needs at least one subject"},
		{"bad namespace", SchemaSpec{Name: "f", Level: "l", Precedence: 850, Subjects: []Subject{ServiceAccount("Obs", "a")}}, `service account namespace "Obs" is invalid`},
		{"empty user", SchemaSpec{Name: "f", Level: "l", Precedence: 850, Subjects: []Subject{User("")}}, "user name must not be empty"},
		{"unknown kind", SchemaSpec{Name: "f", Level: "l", Precedence: 850, Subjects: []Subject{{Kind: "Robot", Name: "r"}}}, `subject kind "Robot"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := FlowSchema(tt.spec, laneOwner); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseServiceAccount(t *testing.T) {
	tests := []struct {
		in      string
		want    Subject
		wantErr string
	}{
		{in: "obs/agent", want: ServiceAccount("obs", "agent")},
		{in: "agent", wantErr: "want namespace/name"},
		{in: "obs/", wantErr: "want namespace/name"},
		{in: "/agent", wantErr: "want namespace/name"},
		{in: "a/b/c", wantErr: "want namespace/name"},
		{in: "OBS/agent", wantErr: "namespace \"OBS\" is invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseServiceAccount(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseServiceAccount = %+v, %v; want %+v", got, err, tt.want)
			}
			if got.Username() != "system:serviceaccount:obs:agent" {
				t.Fatalf("username = %q", got.Username())
			}
		})
	}
}
