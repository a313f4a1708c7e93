package apf

import (
	"fmt"
	"slices"
	"sort"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
)

// LevelFor is the priority level the API server gives every request of a service account under
// schemas, leaving out those skip names: the FlowSchema of lowest matchingPrecedence (ties to
// the smallest name, as APF orders them) with a rule that matches the account for every verb and
// resource, in every namespace and at cluster scope. A rollout in observe mode points its
// FlowSchema at that level, so its agents are measured exactly where they would run anyway and
// queued by nothing new. Pure.
func LevelFor(schemas []flowcontrolv1.FlowSchema, sa Subject, skip func(*flowcontrolv1.FlowSchema) bool) (level, schema string, err error) {
	if sa.Kind != KindServiceAccount {
		return "", "", fmt.Errorf("%s: only a service account's level can be found", sa)
	}
	ordered := slices.Clone(schemas)
	sort.SliceStable(ordered, func(i, j int) bool {
		a, b := ordered[i].Spec.MatchingPrecedence, ordered[j].Spec.MatchingPrecedence
		return a < b || (a == b && ordered[i].Name < ordered[j].Name)
	})
	for i := range ordered {
		fs := &ordered[i]
		if skip != nil && skip(fs) {
			continue
		}
		for _, rule := range fs.Spec.Rules {
			if matchesAccount(rule.Subjects, sa) && coversEverything(rule.ResourceRules) {
				return fs.Spec.PriorityLevelConfiguration.Name, fs.Name, nil
			}
		}
	}
	return "", "", fmt.Errorf("no FlowSchema matches every request of %s", sa)
}

// matchesAccount reports whether subjects include the service account: by name, by a wildcard
// name in its namespace, or by one of the groups every service account belongs to.
func matchesAccount(subjects []flowcontrolv1.Subject, sa Subject) bool {
	groups := []string{flowcontrolv1.NameAll, "system:serviceaccounts", "system:serviceaccounts:" + sa.Namespace, "system:authenticated"}
	for _, s := range subjects {
		switch {
		case s.ServiceAccount != nil:
			if s.ServiceAccount.Namespace == sa.Namespace && (s.ServiceAccount.Name == sa.Name || s.ServiceAccount.Name == flowcontrolv1.NameAll) {
				return true
			}
		case s.User != nil:
			if s.User.Name == sa.Username() || s.User.Name == flowcontrolv1.NameAll {
				return true
			}
		case s.Group != nil:
			if slices.Contains(groups, s.Group.Name) {
				return true
			}
		}
	}
	return false
}

// coversEverything reports whether some resource rule matches every verb, group and resource,
// namespaced and cluster-scoped.
func coversEverything(rules []flowcontrolv1.ResourcePolicyRule) bool {
	for _, r := range rules {
		if slices.Contains(r.Verbs, flowcontrolv1.VerbAll) && slices.Contains(r.APIGroups, flowcontrolv1.APIGroupAll) &&
			slices.Contains(r.Resources, flowcontrolv1.ResourceAll) && r.ClusterScope && slices.Contains(r.Namespaces, flowcontrolv1.NamespaceEvery) {
			return true
		}
	}
	return false
}
