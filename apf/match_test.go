package apf

import (
	"testing"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func schema(name, level string, precedence int32, rule flowcontrolv1.ResourcePolicyRule, subjects ...flowcontrolv1.Subject) flowcontrolv1.FlowSchema {
	return flowcontrolv1.FlowSchema{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: flowcontrolv1.FlowSchemaSpec{
		PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: level}, MatchingPrecedence: precedence,
		Rules: []flowcontrolv1.PolicyRulesWithSubjects{{Subjects: subjects, ResourceRules: []flowcontrolv1.ResourcePolicyRule{rule}}}}}
}

func group(name string) flowcontrolv1.Subject {
	return Group(name).api()
}

var everything = flowcontrolv1.ResourcePolicyRule{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, ClusterScope: true, Namespaces: []string{"*"}}

// The API server's own schemas, as v1.37 creates them, less the ones only system identities
// match.
func defaults() []flowcontrolv1.FlowSchema {
	return []flowcontrolv1.FlowSchema{
		schema("catch-all", "catch-all", 10000, everything, group("system:unauthenticated"), group("system:authenticated")),
		schema("exempt", "exempt", 1, everything, group("system:masters")),
		schema("service-accounts", "workload-low", 9000, everything, group("system:serviceaccounts")),
		schema("kube-system-service-accounts", "workload-high", 900, everything, group("system:serviceaccounts:kube-system")),
		schema("global-default", "global-default", 9900, everything, group("system:unauthenticated"), group("system:authenticated")),
	}
}

func TestAnAgentsLevelIsTheOneTheAPIServerWouldGiveItAnyway(t *testing.T) {
	agent := ServiceAccount("agents", "agent")
	leasesOnly := flowcontrolv1.ResourcePolicyRule{Verbs: []string{"*"}, APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Namespaces: []string{"*"}}
	lane := schema("bulkhead-rollout-agents.agent", "bulkhead-rollout-agents.agent", PrecedenceRolloutLane, everything, agent.api())
	lane.Labels = map[string]string{ManagedByLabel: ManagedByValue, PurposeLabel: string(PurposeRolloutLane)}
	skipLanes := func(fs *flowcontrolv1.FlowSchema) bool { return fs.Labels[PurposeLabel] == string(PurposeRolloutLane) }
	tests := []struct {
		name              string
		extra             []flowcontrolv1.FlowSchema
		sa                Subject
		level, flowSchema string
	}{
		{"an ordinary service account", nil, agent, "workload-low", "service-accounts"},
		{"one of kube-system", nil, ServiceAccount("kube-system", "agent"), "workload-high", "kube-system-service-accounts"},
		{"a standing compartment", []flowcontrolv1.FlowSchema{schema("bulkhead-compartment-agents.agent", "bulkhead-compartment-agents.agent",
			PrecedenceCompartment, everything, agent.api())}, agent, "bulkhead-compartment-agents.agent", "bulkhead-compartment-agents.agent"},
		{"a schema for some of its requests only", []flowcontrolv1.FlowSchema{schema("leases", "leader-election", 100, leasesOnly, agent.api())},
			agent, "workload-low", "service-accounts"},
		{"every account of its namespace", []flowcontrolv1.FlowSchema{schema("agents-ns", "agents", 5000, everything,
			flowcontrolv1.Subject{Kind: flowcontrolv1.SubjectKindServiceAccount, ServiceAccount: &flowcontrolv1.ServiceAccountSubject{Namespace: "agents", Name: "*"}})},
			agent, "agents", "agents-ns"},
		{"by its user name", []flowcontrolv1.FlowSchema{schema("by-user", "users", 4000, everything, User("system:serviceaccount:agents:agent").api())},
			agent, "users", "by-user"},
		{"ties go to the smaller name", []flowcontrolv1.FlowSchema{schema("b", "level-b", 3000, everything, agent.api()), schema("a", "level-a", 3000, everything, agent.api())},
			agent, "level-a", "a"},
		{"a rollout lane left out", []flowcontrolv1.FlowSchema{lane}, agent, "workload-low", "service-accounts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			level, fs, err := LevelFor(append(defaults(), tt.extra...), tt.sa, skipLanes)
			if err != nil || level != tt.level || fs != tt.flowSchema {
				t.Fatalf("LevelFor = %q by %q, %v; want %q by %q", level, fs, err, tt.level, tt.flowSchema)
			}
		})
	}
	if _, _, err := LevelFor(nil, agent, nil); err == nil {
		t.Fatal("no schema at all: want an error")
	}
}
