package plan

import (
	corev1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
)

// Eligible returns the nodes on which the DaemonSet controller would run a pod of this
// template, following its rules (pkg/controller/daemon NodeShouldRunDaemonPod): a fixed
// nodeName must match, nodeSelector and required node affinity must match, and every
// NoSchedule/NoExecute taint must be tolerated, counting the tolerations the controller adds
// to every daemon pod.
func Eligible(spec corev1.PodSpec, nodes []corev1.Node) []corev1.Node {
	affinity := nodeaffinity.NewRequiredNodeAffinity(spec.NodeSelector, spec.Affinity)
	tolerations := daemonPodTolerations(spec)
	var out []corev1.Node
	for i := range nodes {
		node := &nodes[i]
		if spec.NodeName != "" && spec.NodeName != node.Name {
			continue
		}
		if ok, _ := affinity.Match(node); !ok {
			continue
		}
		if _, untolerated := corev1helpers.FindMatchingUntoleratedTaint(klog.Background(), node.Spec.Taints, tolerations, func(t *corev1.Taint) bool {
			return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
		}, false); untolerated {
			continue
		}
		out = append(out, *node)
	}
	return out
}

// daemonPodTolerations adds the tolerations the DaemonSet controller gives every daemon pod
// (pkg/controller/daemon/util AddOrUpdateDaemonPodTolerations).
func daemonPodTolerations(spec corev1.PodSpec) []corev1.Toleration {
	tolerations := append([]corev1.Toleration(nil), spec.Tolerations...)
	add := func(key string, effect corev1.TaintEffect) {
		tolerations = append(tolerations, corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: effect})
	}
	add(corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute)
	add(corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute)
	add(corev1.TaintNodeDiskPressure, corev1.TaintEffectNoSchedule)
	add(corev1.TaintNodeMemoryPressure, corev1.TaintEffectNoSchedule)
	add(corev1.TaintNodePIDPressure, corev1.TaintEffectNoSchedule)
	add(corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule)
	if spec.HostNetwork {
		add(corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule)
	}
	return tolerations
}
