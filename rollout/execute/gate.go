package execute

import (
	corev1 "k8s.io/api/core/v1"
)

// Gate returns a copy of spec whose required node affinity also demands the node label key:
// the requirement is ANDed into each of the user's node selector terms (terms are ORed, so
// every term needs it), or is the only term when there were none.
func Gate(spec corev1.PodSpec, key string) corev1.PodSpec {
	out := *spec.DeepCopy()
	req := corev1.NodeSelectorRequirement{Key: key, Operator: corev1.NodeSelectorOpExists}
	if out.Affinity == nil {
		out.Affinity = &corev1.Affinity{}
	}
	if out.Affinity.NodeAffinity == nil {
		out.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	na := out.Affinity.NodeAffinity
	if na.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		na.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{}
	}
	sel := na.RequiredDuringSchedulingIgnoredDuringExecution
	if len(sel.NodeSelectorTerms) == 0 {
		sel.NodeSelectorTerms = []corev1.NodeSelectorTerm{{}}
	}
	for i := range sel.NodeSelectorTerms {
		sel.NodeSelectorTerms[i].MatchExpressions = append(sel.NodeSelectorTerms[i].MatchExpressions, req)
	}
	return out
}

// Ungate undoes Gate: it removes the key's requirement from every term, then the structures
// Gate had to create (a term left empty, an empty selector, affinity).
func Ungate(spec corev1.PodSpec, key string) corev1.PodSpec {
	out := *spec.DeepCopy()
	if out.Affinity == nil || out.Affinity.NodeAffinity == nil || out.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return out
	}
	na := out.Affinity.NodeAffinity
	sel := na.RequiredDuringSchedulingIgnoredDuringExecution
	var terms []corev1.NodeSelectorTerm
	for _, term := range sel.NodeSelectorTerms {
		var exprs []corev1.NodeSelectorRequirement
		for _, e := range term.MatchExpressions {
			if e.Key != key {
				exprs = append(exprs, e)
			}
		}
		if len(exprs) == 0 && len(term.MatchFields) == 0 {
			continue // only Gate's requirement was there
		}
		term.MatchExpressions = exprs
		terms = append(terms, term)
	}
	sel.NodeSelectorTerms = terms
	if len(sel.NodeSelectorTerms) == 0 {
		na.RequiredDuringSchedulingIgnoredDuringExecution = nil
	}
	if na.RequiredDuringSchedulingIgnoredDuringExecution == nil && na.PreferredDuringSchedulingIgnoredDuringExecution == nil {
		out.Affinity.NodeAffinity = nil
	}
	if out.Affinity.NodeAffinity == nil && out.Affinity.PodAffinity == nil && out.Affinity.PodAntiAffinity == nil {
		out.Affinity = nil
	}
	return out
}

// Gated reports whether spec carries the gate requirement.
func Gated(spec corev1.PodSpec, key string) bool {
	if spec.Affinity == nil || spec.Affinity.NodeAffinity == nil || spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return false
	}
	for _, term := range spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, e := range term.MatchExpressions {
			if e.Key == key {
				return true
			}
		}
	}
	return false
}
