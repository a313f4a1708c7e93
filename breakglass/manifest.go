package breakglass

import (
	"fmt"
	"strings"
	"unicode"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/bulkhead-dev/bulkhead/apf"
)

// OperatorsGroupAnnotation records, on the lane's FlowSchema, which group install was given, so
// that later commands can protect it from sheds without being told again.
const OperatorsGroupAnnotation = "bulkhead.dev/operators-group"

// InstallOptions are the choices `bulkhead install` offers.
type InstallOptions struct {
	// OperatorsGroup is matched by the lane and may mint break-glass tokens.
	OperatorsGroup string
}

// Manifest is every object install creates, in the order it creates them.
type Manifest struct {
	Namespace      *corev1.Namespace
	ServiceAccount *corev1.ServiceAccount
	// Policy and its binding hold the break-glass identity to its rails in the API server;
	// TokenPolicy caps its tokens' lifetime. They exist before the role that grants anything.
	Policy             *admissionv1.ValidatingAdmissionPolicy
	PolicyBinding      *admissionv1.ValidatingAdmissionPolicyBinding
	TokenPolicy        *admissionv1.ValidatingAdmissionPolicy
	TokenPolicyBinding *admissionv1.ValidatingAdmissionPolicyBinding
	ClusterRole        *rbacv1.ClusterRole
	ClusterRoleBinding *rbacv1.ClusterRoleBinding
	DiscoveryRole      *rbacv1.Role
	DiscoveryBinding   *rbacv1.RoleBinding
	TokenRole          *rbacv1.Role
	TokenBinding       *rbacv1.RoleBinding
	Level              *flowcontrolv1.PriorityLevelConfiguration
	Schema             *flowcontrolv1.FlowSchema
}

// Objects lists the manifest in creation order: the rails come before the rights they narrow,
// and the lane comes last so that it never points at an identity that does not exist yet.
func (m *Manifest) Objects() []runtime.Object {
	return []runtime.Object{m.Namespace, m.ServiceAccount, m.Policy, m.PolicyBinding, m.TokenPolicy, m.TokenPolicyBinding,
		m.ClusterRole, m.ClusterRoleBinding, m.DiscoveryRole, m.DiscoveryBinding, m.TokenRole, m.TokenBinding, m.Level, m.Schema}
}

// LaneQueuing gives each operator (the schema distinguishes by user) a queue of its own most of
// the time, so one operator's burst does not delay another's.
var LaneQueuing = apf.Queuing{Queues: 16, HandSize: 4, QueueLengthLimit: 50}

// Rules is the break-glass identity's ClusterRole: the verbs bulkhead's own commands use through
// the lane (shed and its expiry, a rollout's rollback, reading apiserver metrics), nothing more.
// RBAC cannot say which objects: the writes are narrowed further by the API server's admission
// policy (policy.go). Each rule is explained in README.md.
var Rules = []rbacv1.PolicyRule{
	{APIGroups: []string{"flowcontrol.apiserver.k8s.io"}, Resources: []string{"flowschemas", "prioritylevelconfigurations"},
		Verbs: []string{"get", "list", "create", "patch", "delete"}},
	{APIGroups: []string{"apps"}, Resources: []string{"daemonsets"}, Verbs: []string{"get", "list", "patch", "update", "delete"}},
	{APIGroups: []string{"apps"}, Resources: []string{"controllerrevisions"}, Verbs: []string{"get", "list"}},
	{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "delete"}},
	{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "patch"}},
	{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create"}},
	{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}},
}

var discoveryRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}},
}

// namespaceLabels make the API server refuse any pod in namespace bulkhead that is not
// Pod Security "restricted": nothing runs there, and nothing privileged ever should.
var namespaceLabels = map[string]string{
	"pod-security.kubernetes.io/enforce": "restricted",
	"pod-security.kubernetes.io/warn":    "restricted",
	"pod-security.kubernetes.io/audit":   "restricted",
}

// maxGroupName bounds an operators' group name (the API's limit on a label value-like name is
// far above any real group; this only stops pasted garbage).
const maxGroupName = 253

// CheckOperatorsGroup refuses a group whose members would be the wrong people to mint
// break-glass tokens: empty or malformed names, "*", and every system: group — components,
// nodes, everyone, and system:serviceaccounts[:namespace], which would let any pod running as a
// service account of that namespace mint them.
func CheckOperatorsGroup(group string) error {
	switch {
	case group == "":
		return fmt.Errorf("--operators-group must not be empty")
	case strings.TrimSpace(group) != group:
		return fmt.Errorf("--operators-group %q has leading or trailing spaces", group)
	case strings.IndexFunc(group, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("--operators-group %q contains whitespace or control characters; no authenticator produces such a group", group)
	case len(group) > maxGroupName:
		return fmt.Errorf("--operators-group is %d bytes long; at most %d", len(group), maxGroupName)
	case group == "*":
		return fmt.Errorf("--operators-group \"*\" would match every group: everyone could mint break-glass tokens")
	case group == "system:masters":
		return fmt.Errorf("--operators-group system:masters: its members are exempt from APF already; name the group of operators who are not cluster admins")
	case strings.HasPrefix(group, "system:serviceaccounts"):
		return fmt.Errorf("--operators-group %s: every pod running as a service account%s could mint break-glass tokens; name a group of people",
			group, strings.TrimPrefix(strings.Replace(group, "system:serviceaccounts:", " of namespace ", 1), "system:serviceaccounts"))
	case strings.HasPrefix(group, "system:"):
		// A system group would put components, or every client, in the lane and make it useless.
		reason := protectedGroup(group)
		if reason == "" {
			reason = "system: groups are Kubernetes' own"
		}
		return fmt.Errorf("--operators-group %q: %s; name a group of people", group, reason)
	}
	return nil
}

// Desired builds the manifest, or says what is wrong with opts.
func Desired(opts InstallOptions) (*Manifest, error) {
	group := opts.OperatorsGroup
	if err := CheckOperatorsGroup(group); err != nil {
		return nil, err
	}

	own := apf.Ownership{Purpose: apf.PurposeBreakGlass}
	meta := func(name, namespace string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: ownedLabels()}
	}
	sa := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: ServiceAccountName, Namespace: Namespace}
	operators := rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: group}
	noAutomount := false

	level, err := apf.PriorityLevel(apf.LevelSpec{Name: LaneName, Shares: LaneShares, LendablePercent: 0, Queuing: LaneQueuing}, own)
	if err != nil {
		return nil, fmt.Errorf("break-glass level: %w", err)
	}
	schemaOwn := own
	schemaOwn.Annotations = map[string]string{OperatorsGroupAnnotation: group}
	schema, err := apf.FlowSchema(apf.SchemaSpec{Name: LaneName, Level: LaneName, Precedence: LanePrecedence, ByUser: true,
		Subjects: []apf.Subject{apf.ServiceAccount(Namespace, ServiceAccountName), apf.Group(group)}}, schemaOwn)
	if err != nil {
		return nil, fmt.Errorf("break-glass flow schema: %w", err)
	}

	policy, policyBinding, tokenPolicy, tokenPolicyBinding := policies(group, func(name string) metav1.ObjectMeta { return meta(name, "") })
	nsMeta := meta(Namespace, "")
	for k, v := range namespaceLabels {
		nsMeta.Labels[k] = v
	}

	return &Manifest{
		Namespace: &corev1.Namespace{TypeMeta: typeMeta("v1", "Namespace"), ObjectMeta: nsMeta},
		Policy:    policy, PolicyBinding: policyBinding, TokenPolicy: tokenPolicy, TokenPolicyBinding: tokenPolicyBinding,
		ServiceAccount: &corev1.ServiceAccount{TypeMeta: typeMeta("v1", "ServiceAccount"), ObjectMeta: meta(ServiceAccountName, Namespace),
			// Nothing runs as this account in a pod; its tokens are minted on demand, short-lived.
			AutomountServiceAccountToken: &noAutomount},
		ClusterRole: &rbacv1.ClusterRole{TypeMeta: typeMeta(rbacv1.SchemeGroupVersion.String(), "ClusterRole"),
			ObjectMeta: meta(ClusterRoleName, ""), Rules: Rules},
		ClusterRoleBinding: &rbacv1.ClusterRoleBinding{TypeMeta: typeMeta(rbacv1.SchemeGroupVersion.String(), "ClusterRoleBinding"),
			ObjectMeta: meta(ClusterRoleName, ""), Subjects: []rbacv1.Subject{sa},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: ClusterRoleName}},
		DiscoveryRole: &rbacv1.Role{TypeMeta: typeMeta(rbacv1.SchemeGroupVersion.String(), "Role"),
			ObjectMeta: meta(DiscoveryRoleName, DiscoveryNamespace), Rules: discoveryRules},
		DiscoveryBinding: &rbacv1.RoleBinding{TypeMeta: typeMeta(rbacv1.SchemeGroupVersion.String(), "RoleBinding"),
			ObjectMeta: meta(DiscoveryRoleName, DiscoveryNamespace), Subjects: []rbacv1.Subject{sa},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: DiscoveryRoleName}},
		TokenRole: &rbacv1.Role{TypeMeta: typeMeta(rbacv1.SchemeGroupVersion.String(), "Role"),
			ObjectMeta: meta(TokenRoleName, Namespace), Rules: []rbacv1.PolicyRule{{APIGroups: []string{""},
				Resources: []string{"serviceaccounts/token"}, ResourceNames: []string{ServiceAccountName}, Verbs: []string{"create"}}}},
		TokenBinding: &rbacv1.RoleBinding{TypeMeta: typeMeta(rbacv1.SchemeGroupVersion.String(), "RoleBinding"),
			ObjectMeta: meta(TokenRoleName, Namespace), Subjects: []rbacv1.Subject{operators},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: TokenRoleName}},
		Level:  level,
		Schema: schema,
	}, nil
}

func ownedLabels() map[string]string {
	return map[string]string{apf.ManagedByLabel: apf.ManagedByValue, apf.PurposeLabel: string(apf.PurposeBreakGlass)}
}

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}
