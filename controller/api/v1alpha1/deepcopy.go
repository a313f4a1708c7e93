package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// DeepCopyInto copies every field; written by hand (no code generator in the build).
func (in *RolloutPolicy) DeepCopyInto(out *RolloutPolicy) {
	*out = *in
	out.TypeMeta = in.TypeMeta
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	in.Spec.DeepCopyInto(&out.Spec)
	in.Status.DeepCopyInto(&out.Status)
}

func (in *RolloutPolicy) DeepCopy() *RolloutPolicy {
	if in == nil {
		return nil
	}
	out := new(RolloutPolicy)
	in.DeepCopyInto(out)
	return out
}

func (in *RolloutPolicy) DeepCopyObject() runtime.Object { return in.DeepCopy() }

func (in *RolloutPolicySpec) DeepCopyInto(out *RolloutPolicySpec) {
	*out = *in
	out.Namespaces = append([]string(nil), in.Namespaces...)
	out.NamespaceSelector = in.NamespaceSelector.DeepCopy()
	out.Selector = in.Selector.DeepCopy()
	out.Waves = append([]string(nil), in.Waves...)
	if in.Budget != nil {
		out.Budget = make(map[string]string, len(in.Budget))
		for k, v := range in.Budget {
			out.Budget[k] = v
		}
	}
}

func (in *RolloutPolicyStatus) DeepCopyInto(out *RolloutPolicyStatus) {
	*out = *in
	if in.Conditions != nil {
		out.Conditions = make([]metav1.Condition, len(in.Conditions))
		for i := range in.Conditions {
			in.Conditions[i].DeepCopyInto(&out.Conditions[i])
		}
	}
}

func (in *RolloutPolicyList) DeepCopyInto(out *RolloutPolicyList) {
	*out = *in
	out.TypeMeta = in.TypeMeta
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	if in.Items != nil {
		out.Items = make([]RolloutPolicy, len(in.Items))
		for i := range in.Items {
			in.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
}

func (in *RolloutPolicyList) DeepCopy() *RolloutPolicyList {
	if in == nil {
		return nil
	}
	out := new(RolloutPolicyList)
	in.DeepCopyInto(out)
	return out
}

func (in *RolloutPolicyList) DeepCopyObject() runtime.Object { return in.DeepCopy() }

func (in *RolloutPolicyStatus) DeepCopy() *RolloutPolicyStatus {
	if in == nil {
		return nil
	}
	out := new(RolloutPolicyStatus)
	in.DeepCopyInto(out)
	return out
}
