package breakglass

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/bulkhead-dev/bulkhead/apf"
)

// The rails the API server enforces on the break-glass identity, whoever holds its token and
// whatever client they use. RBAC grants the verbs a rollback and a shed need (Rules); RBAC cannot
// say which objects, so a ValidatingAdmissionPolicy (CEL, evaluated by kube-apiserver itself, no
// webhook) narrows every write to:
//
//   - DaemonSets under a bulkhead rollout that has not ended: the rollout state annotation is on
//     the object, and its phase is neither Complete nor RolledBack;
//   - nodes: removing bulkhead's rollout gate labels, nothing else;
//   - pods: deleting pods a guarded rollout made (GuardedPodAnnotation, a DaemonSet's pods);
//   - FlowSchemas: creating and changing sheds (precedence 700, to a level of their own name),
//     never jailing the control plane's components or everyone; deleting sheds and rollout
//     lanes;
//   - PriorityLevelConfigurations: sheds and rollout lanes, Limited, at most MaxLimitShares
//     shares, lending and borrowing nothing (a squeezed lane is one).
//
// A second policy caps the lifetime of every token minted for the break-glass service account,
// whoever mints it and however (kubectl create token included), and names the minter in the API
// server's audit log.
const (
	// GuardedPodAnnotation marks the pod template of a DaemonSet under a guarded update (set by
	// rollout/execute): the only pods the break-glass identity may delete.
	GuardedPodAnnotation = "rollout.bulkhead.dev/guarded"
	// rolloutStateAnnotation is rollout/state.Annotation (breakglass does not import rollout;
	// a test checks they agree).
	rolloutStateAnnotation = "rollout.bulkhead.dev/state"
	// gateLabelPrefix starts every node label a rollout gates a new DaemonSet with
	// (rollout/execute.NodeLabelKey).
	gateLabelPrefix = "rollout.bulkhead.dev/gate-"
	// ShedForceAnnotation on a shed's FlowSchema records that it was forced past a soft rail
	// (bulkhead shed --force); the policy lets soft rails be crossed only with it.
	ShedForceAnnotation = "bulkhead.dev/shed-force"
)

// username is how the API server authenticates the break-glass service account.
var username = apf.ServiceAccount(Namespace, ServiceAccountName).Username()

// hardRailSubject is CEL over a FlowSchema subject s: true when jailing it would jail the control
// plane's own components or everyone. Guard refuses the same subjects client-side.
const hardRailSubject = `(s.kind == 'Group' && (s.group.name == '*' ||
    (s.group.name.startsWith('system:') &&
     !(s.group.name.startsWith('system:serviceaccounts:') && s.group.name != 'system:serviceaccounts:kube-system')))) ||
  (s.kind == 'User' && (s.user.name == '*' ||
    (s.user.name.startsWith('system:') &&
     !(s.user.name.startsWith('system:serviceaccount:') && !s.user.name.startsWith('system:serviceaccount:kube-system:'))))) ||
  (s.kind == 'ServiceAccount' && (s.serviceAccount.namespace == 'kube-system' || s.serviceAccount.namespace == '*'))`

// softRailSubject: true for bulkhead itself and the operators' group, which only a forced shed
// may jail.
const softRailSubject = `(s.kind == 'ServiceAccount' && s.serviceAccount.namespace == '` + Namespace + `' &&
    (s.serviceAccount.name == '` + ServiceAccountName + `' || s.serviceAccount.name == '*')) ||
  (s.kind == 'User' && s.user.name == 'system:serviceaccount:` + Namespace + `:` + ServiceAccountName + `') ||
  (s.kind == 'Group' && (s.group.name == 'system:serviceaccounts:` + Namespace + `' || s.group.name == variables.operatorsGroup))`

// purpose reads the bulkhead purpose label of obj ("" when obj is absent or not bulkhead's).
func purpose(obj, absentOn string) string {
	labels := obj + ".metadata.labels"
	return fmt.Sprintf(`request.operation != '%s' && has(%s) && '%s' in %s && %s['%s'] == '%s' && '%s' in %s ? %s['%s'] : ''`,
		absentOn, labels, apf.ManagedByLabel, labels, labels, apf.ManagedByLabel, apf.ManagedByValue, apf.PurposeLabel, labels, labels, apf.PurposeLabel)
}

// sameField: an optional field is equally absent or equal in object and oldObject.
func sameField(path string) string {
	return fmt.Sprintf(`has(object.%[1]s) == has(oldObject.%[1]s) && (!has(object.%[1]s) || object.%[1]s == oldObject.%[1]s)`, path)
}

func policies(operatorsGroup string, own func(string) metav1.ObjectMeta) (*admissionv1.ValidatingAdmissionPolicy, *admissionv1.ValidatingAdmissionPolicyBinding,
	*admissionv1.ValidatingAdmissionPolicy, *admissionv1.ValidatingAdmissionPolicyBinding) {
	fail := admissionv1.Fail
	equivalent := admissionv1.Equivalent
	forbidden := metav1.StatusReasonForbidden
	anyScope := admissionv1.AllScopes
	rule := func(group string, ops []admissionv1.OperationType, resources ...string) admissionv1.NamedRuleWithOperations {
		return admissionv1.NamedRuleWithOperations{RuleWithOperations: admissionv1.RuleWithOperations{
			Operations: ops,
			Rule:       admissionv1.Rule{APIGroups: []string{group}, APIVersions: []string{"*"}, Resources: resources, Scope: &anyScope}}}
	}
	writes := []admissionv1.OperationType{admissionv1.Create, admissionv1.Update, admissionv1.Delete}
	validation := func(resource, expression, message string) admissionv1.Validation {
		return admissionv1.Validation{Expression: fmt.Sprintf("request.resource.resource != '%s' ||\n(%s)", resource, expression),
			Message: message, Reason: &forbidden}
	}
	// apfOwned: the identity creates, changes and deletes only bulkhead's APF objects of the
	// given purposes (deleting: sheds and rollout lanes, which a rollback removes).
	apfOwned := func(resource string, creatable, changeable []string) admissionv1.Validation {
		return validation(resource, fmt.Sprintf(`request.operation == 'DELETE' ? variables.oldPurpose in ['shed', 'rollout-lane'] :
request.operation == 'CREATE' ? variables.newPurpose in %s :
variables.oldPurpose in %s && variables.newPurpose == variables.oldPurpose`, celList(creatable), celList(changeable)),
			fmt.Sprintf("the break-glass identity may create only bulkhead's %s %s, change only its %s and delete only its sheds and rollout lanes (labels %s=%s, %s)",
				strings.Join(creatable, " and "), resource, strings.Join(changeable, " and "), apf.ManagedByLabel, apf.ManagedByValue, apf.PurposeLabel))
	}
	shed, lane := []string{string(apf.PurposeShed)}, []string{string(apf.PurposeShed), string(apf.PurposeRolloutLane)}

	guard := &admissionv1.ValidatingAdmissionPolicy{
		TypeMeta:   typeMeta(admissionv1.SchemeGroupVersion.String(), "ValidatingAdmissionPolicy"),
		ObjectMeta: own(PolicyName),
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionv1.MatchResources{
				NamespaceSelector: &metav1.LabelSelector{}, ObjectSelector: &metav1.LabelSelector{}, MatchPolicy: &equivalent,
				ResourceRules: []admissionv1.NamedRuleWithOperations{
					rule("apps", writes, "daemonsets"),
					rule("", writes, "nodes", "pods"),
					rule("flowcontrol.apiserver.k8s.io", writes, "flowschemas", "prioritylevelconfigurations"),
				},
			},
			MatchConditions: []admissionv1.MatchCondition{{Name: "break-glass-identity",
				Expression: fmt.Sprintf("request.userInfo.username == '%s'", username)}},
			Variables: []admissionv1.Variable{
				{Name: "operatorsGroup", Expression: fmt.Sprintf("'%s'", operatorsGroup)},
				{Name: "oldPurpose", Expression: purpose("oldObject", "CREATE")},
				{Name: "newPurpose", Expression: purpose("object", "DELETE")},
			},
			Validations: []admissionv1.Validation{
				validation("daemonsets", fmt.Sprintf(`request.operation != 'CREATE' &&
has(oldObject.metadata.annotations) && '%[1]s' in oldObject.metadata.annotations &&
!oldObject.metadata.annotations['%[1]s'].matches('"phase":"(Complete|RolledBack)"') &&
(request.operation == 'DELETE' || has(object.metadata.annotations) && '%[1]s' in object.metadata.annotations)`, rolloutStateAnnotation),
					fmt.Sprintf("the break-glass identity may change only DaemonSets under a bulkhead rollout that has not ended (annotation %s); roll other DaemonSets back with your own credentials", rolloutStateAnnotation)),
				validation("nodes", fmt.Sprintf(`request.operation == 'UPDATE' && %s && %s && %s &&
(!has(object.metadata.labels) || object.metadata.labels.all(k, has(oldObject.metadata.labels) && k in oldObject.metadata.labels && oldObject.metadata.labels[k] == object.metadata.labels[k])) &&
(!has(oldObject.metadata.labels) || oldObject.metadata.labels.all(k, k.startsWith('%s') || has(object.metadata.labels) && k in object.metadata.labels))`,
					sameField("spec"), sameField("metadata.annotations"), sameField("metadata.finalizers"), gateLabelPrefix),
					fmt.Sprintf("the break-glass identity may only remove bulkhead's rollout gate labels (%s*) from nodes", gateLabelPrefix)),
				validation("pods", fmt.Sprintf(`request.operation == 'DELETE' &&
has(oldObject.metadata.annotations) && '%s' in oldObject.metadata.annotations &&
has(oldObject.metadata.ownerReferences) && oldObject.metadata.ownerReferences.exists(r, r.kind == 'DaemonSet' && has(r.controller) && r.controller)`, GuardedPodAnnotation),
					fmt.Sprintf("the break-glass identity may delete only the pods of a guarded bulkhead rollout (annotation %s, owned by their DaemonSet)", GuardedPodAnnotation)),
				apfOwned("flowschemas", shed, shed),
				validation("flowschemas", fmt.Sprintf(`request.operation == 'DELETE' ||
object.spec.matchingPrecedence == %d && object.spec.priorityLevelConfiguration.name == object.metadata.name`, ShedPrecedence),
					fmt.Sprintf("a shed's FlowSchema sits at matchingPrecedence %d and sends its identity to the priority level of its own name", ShedPrecedence)),
				validation("flowschemas", `request.operation == 'DELETE' ||
!has(object.spec.rules) || object.spec.rules.all(r, !has(r.subjects) || r.subjects.all(s, !(`+hardRailSubject+`)))`,
					"a shed may never jail the control plane's components or everyone: system:masters, system:nodes and kubelets, system:authenticated, system:unauthenticated, "+
						"system:serviceaccounts, kube-system service accounts, other system: users and groups, or '*'"),
				validation("flowschemas", fmt.Sprintf(`request.operation == 'DELETE' ||
has(object.metadata.annotations) && '%[1]s' in object.metadata.annotations && object.metadata.annotations['%[1]s'] == 'true' ||
!has(object.spec.rules) || object.spec.rules.all(r, !has(r.subjects) || r.subjects.all(s, !(`+softRailSubject+`)))`, ShedForceAnnotation),
					fmt.Sprintf("refusing to jail bulkhead's own service account or the break-glass operators' group, who recover the cluster; "+
						"annotate the FlowSchema %s=true (bulkhead shed --force) to do it anyway", ShedForceAnnotation)),
				apfOwned("prioritylevelconfigurations", lane, lane),
				validation("prioritylevelconfigurations", fmt.Sprintf(`request.operation == 'DELETE' ||
object.spec.type == 'Limited' && has(object.spec.limited.nominalConcurrencyShares) && object.spec.limited.nominalConcurrencyShares <= %d &&
has(object.spec.limited.borrowingLimitPercent) && object.spec.limited.borrowingLimitPercent == 0 &&
(!has(object.spec.limited.lendablePercent) || object.spec.limited.lendablePercent == 0)`, MaxLimitShares),
					fmt.Sprintf("a jail or a squeezed lane is Limited, holds at most %d shares and lends and borrows nothing", MaxLimitShares)),
			},
		},
	}

	token := &admissionv1.ValidatingAdmissionPolicy{
		TypeMeta:   typeMeta(admissionv1.SchemeGroupVersion.String(), "ValidatingAdmissionPolicy"),
		ObjectMeta: own(TokenPolicyName),
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionv1.MatchResources{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": Namespace}},
				ObjectSelector:    &metav1.LabelSelector{}, MatchPolicy: &equivalent,
				ResourceRules: []admissionv1.NamedRuleWithOperations{{ResourceNames: []string{ServiceAccountName},
					RuleWithOperations: rule("", []admissionv1.OperationType{admissionv1.Create}, "serviceaccounts/token").RuleWithOperations}},
			},
			Validations: []admissionv1.Validation{{
				Expression: fmt.Sprintf("!has(object.spec.expirationSeconds) || object.spec.expirationSeconds <= %d", int64(MaxTokenTTL.Seconds())),
				Message:    fmt.Sprintf("break-glass tokens live at most %s; mint a new one when it expires (bulkhead breakglass kubeconfig --ttl)", MaxTokenTTL),
				Reason:     &forbidden,
			}},
			AuditAnnotations: []admissionv1.AuditAnnotation{{Key: "minted-by",
				ValueExpression: "request.userInfo.username + ' minted a break-glass token for ' + string(object.spec.expirationSeconds) + 's'"}},
		},
	}
	binding := func(name string) *admissionv1.ValidatingAdmissionPolicyBinding {
		return &admissionv1.ValidatingAdmissionPolicyBinding{
			TypeMeta:   typeMeta(admissionv1.SchemeGroupVersion.String(), "ValidatingAdmissionPolicyBinding"),
			ObjectMeta: own(name),
			Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: name,
				ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny, admissionv1.Audit}},
		}
	}
	return guard, binding(PolicyName), token, binding(TokenPolicyName)
}

func celList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = "'" + s + "'"
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// railsProbe is a write the break-glass policy must refuse: a forced shed of system:masters.
const railsProbe = "bulkhead-rails-probe"

// WaitForRails waits until the API server enforces the break-glass policy, and says so: kube-
// apiserver picks a new policy up within about a second, and until it has, a break-glass token
// could do all its role allows. It asks with a dry run as the break-glass identity
// (impersonated: install runs as an admin) of a write the policy must refuse, so nothing is
// written.
func WaitForRails(ctx context.Context, base *rest.Config, timeout time.Duration) error {
	cfg := rest.CopyConfig(base)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: username,
		Groups: []string{"system:serviceaccounts", serviceAccountGroup, "system:authenticated"}}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("check the rails: %w", err)
	}
	_, probe, err := ShedObjects(ShedRequest{Identity: apf.Group("system:masters"), Mode: Mode{Reject: true}, TTL: time.Minute, Force: true},
		"bulkhead install", time.Now())
	if err != nil {
		return err
	}
	probe.Name = railsProbe
	probe.Spec.PriorityLevelConfiguration.Name = railsProbe
	var last error
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		_, last = client.FlowcontrolV1().FlowSchemas().Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		switch {
		case last == nil:
			last = errors.New("a dry run the policy must refuse was admitted")
			return false, nil
		case apierrors.IsForbidden(last) && strings.Contains(last.Error(), "ValidatingAdmissionPolicy '"+PolicyName+"'"):
			return true, nil
		}
		// Any other answer, RBAC's refusal included (the role binding just written may not
		// have reached the authorizer yet), is asked again until the timeout.
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("the API server did not enforce policy %s within %s (%v): break-glass tokens are not held to their rails yet", PolicyName, timeout, last)
	}
	return nil
}
