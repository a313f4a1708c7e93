package execute

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// gateKeyPrefix starts every rollout's node gate (NodeLabelKey).
const gateKeyPrefix = "rollout.bulkhead.dev/gate-"

func isGateKey(key string) bool { return key == HoldKey || strings.HasPrefix(key, gateKeyPrefix) }

// UserTemplate is the pod template as its author wrote it: the template without the hold's
// and every rollout's gate requirement.
func UserTemplate(t corev1.PodTemplateSpec) corev1.PodTemplateSpec {
	out := *t.DeepCopy()
	for _, key := range gateKeys(t.Spec) {
		out.Spec = Ungate(out.Spec, key)
	}
	return out
}

func gateKeys(spec corev1.PodSpec) []string {
	if spec.Affinity == nil || spec.Affinity.NodeAffinity == nil || spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	seen := map[string]bool{}
	var keys []string
	for _, term := range spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, e := range term.MatchExpressions {
			if isGateKey(e.Key) && e.Operator == corev1.NodeSelectorOpExists && !seen[e.Key] {
				seen[e.Key] = true
				keys = append(keys, e.Key)
			}
		}
	}
	return keys
}

// TemplateRevision names the user template: the same template, held, gated, marked
// GuardedPodAnnotation (StartUpdate's mark, written after the revision was recorded) or not,
// has the same revision. A rollout records the revision it rolls out (state.State.Revision).
func TemplateRevision(t corev1.PodTemplateSpec) (string, error) {
	data, err := json.Marshal(unmarked(UserTemplate(t)))
	if err != nil {
		return "", fmt.Errorf("encode pod template: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:16], nil
}

// unmarked is t without GuardedPodAnnotation, bulkhead's mark that no client ever writes.
func unmarked(t corev1.PodTemplateSpec) corev1.PodTemplateSpec {
	delete(t.Annotations, GuardedPodAnnotation)
	if len(t.Annotations) == 0 {
		t.Annotations = nil
	}
	return t
}
