package v1alpha1

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// OptOutLabel, set to "true" on a DaemonSet, keeps every policy away from it.
const OptOutLabel = "bulkhead.dev/opt-out"

// ExcludedNamespaces are never guarded: the control plane's own and bulkhead's.
var ExcludedNamespaces = []string{"kube-system", "bulkhead"}

// Selects reports whether the policy selects a DaemonSet in a namespace with the given
// labels. It is the Go twin of the CEL in deploy/controller/admission.yaml (bulkhead-hold);
// the admission e2e test checks that both agree.
func (p *RolloutPolicy) Selects(namespaceLabels map[string]string, ds *appsv1.DaemonSet) (bool, error) {
	if slices.Contains(ExcludedNamespaces, ds.Namespace) || ds.Labels[OptOutLabel] == "true" {
		return false, nil
	}
	if len(p.Spec.Namespaces) > 0 && !slices.Contains(p.Spec.Namespaces, ds.Namespace) {
		return false, nil
	}
	for _, c := range []struct {
		what     string
		selector *metav1.LabelSelector
		labels   map[string]string
	}{{"namespaceSelector", p.Spec.NamespaceSelector, namespaceLabels}, {"selector", p.Spec.Selector, ds.Labels}} {
		if c.selector == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(c.selector)
		if err != nil {
			return false, fmt.Errorf("RolloutPolicy %s: %s: %w", p.Name, c.what, err)
		}
		if !sel.Matches(labels.Set(c.labels)) {
			return false, nil
		}
	}
	return true, nil
}

// EffectiveMode is the policy's mode with the default applied.
func (p *RolloutPolicy) EffectiveMode() Mode {
	if p.Spec.Mode == "" {
		return Guard
	}
	return p.Spec.Mode
}

// Effective picks the policy that governs a DaemonSet among those that select it: guard wins
// over observe (admission holds when any guard policy selects it), then the first by name.
// It returns nil when none selects it.
func Effective(policies []*RolloutPolicy, namespaceLabels map[string]string, ds *appsv1.DaemonSet) (*RolloutPolicy, error) {
	var selected []*RolloutPolicy
	for _, p := range policies {
		ok, err := p.Selects(namespaceLabels, ds)
		if err != nil {
			return nil, err
		}
		if ok {
			selected = append(selected, p)
		}
	}
	if len(selected) == 0 {
		return nil, nil
	}
	sort.Slice(selected, func(i, j int) bool {
		gi, gj := selected[i].EffectiveMode() == Guard, selected[j].EffectiveMode() == Guard
		if gi != gj {
			return gi
		}
		return selected[i].Name < selected[j].Name
	})
	return selected[0], nil
}

// Settings are a policy's rollout parameters in the rollout core's terms. Zero values mean
// "the product's default", which the rollout core applies.
type Settings struct {
	Mode Mode
	// Waves is the --waves form ("1%,5%,25%,100%"); empty for the default.
	Waves string
	// Soak is 0 for the default.
	Soak time.Duration
	// Budget is the --budget form ("cpu=25%,memory=25%,seats=10%", sorted by resource);
	// empty when the policy sets no resource.
	Budget       string
	Compartments bool
}

// Settings translates the spec. The API server has validated it already (the CRD schema);
// the errors here guard against a policy written before a schema change.
func (p *RolloutPolicy) Settings() (Settings, error) {
	s := Settings{Mode: p.EffectiveMode(), Waves: strings.Join(p.Spec.Waves, ","), Compartments: p.Spec.Compartments}
	if p.Spec.Soak != "" {
		d, err := time.ParseDuration(p.Spec.Soak)
		if err != nil || d <= 0 {
			return Settings{}, fmt.Errorf("RolloutPolicy %s: spec.soak %q: want a positive duration such as 60s", p.Name, p.Spec.Soak)
		}
		s.Soak = d
	}
	resources := make([]string, 0, len(p.Spec.Budget))
	for r := range p.Spec.Budget {
		resources = append(resources, r)
	}
	sort.Strings(resources)
	parts := make([]string, len(resources))
	for i, r := range resources {
		parts[i] = r + "=" + p.Spec.Budget[r]
	}
	s.Budget = strings.Join(parts, ",")
	return s, nil
}
