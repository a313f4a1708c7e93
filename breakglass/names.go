package breakglass

// Names and numbers of what `bulkhead install` creates. They are fixed so that every bulkhead
// command, on any machine, finds the same break-glass identity without configuration.
const (
	// Namespace holds bulkhead's service account and the Role that lets operators mint its tokens.
	Namespace = "bulkhead"
	// ServiceAccountName is bulkhead's own identity and the break-glass identity that
	// `bulkhead breakglass kubeconfig` mints tokens for.
	ServiceAccountName = "bulkhead"
	// LaneName names the break-glass PriorityLevelConfiguration and its FlowSchema.
	LaneName = "bulkhead-break-glass"
	// ClusterRoleName is the least-privilege role of the break-glass identity (see README).
	ClusterRoleName = "bulkhead"
	// TokenRoleName lets the operators' group mint tokens for ServiceAccountName, nothing else.
	TokenRoleName = "bulkhead-break-glass-token"
	// DiscoveryRoleName lets the break-glass identity find the apiserver replicas
	// (EndpointSlices in DiscoveryNamespace) to read their /metrics.
	DiscoveryRoleName  = "bulkhead-apiserver-discovery"
	DiscoveryNamespace = "default"
	// PolicyName names the ValidatingAdmissionPolicy (and its binding) that holds the
	// break-glass identity to what a rollback and a shed need, in the API server.
	PolicyName = "bulkhead-break-glass"
	// TokenPolicyName names the policy that caps the lifetime of break-glass tokens.
	TokenPolicyName = "bulkhead-break-glass-token"

	// DefaultOperatorsGroup is the group whose members travel the lane with their own credentials.
	DefaultOperatorsGroup = "bulkhead-operators"

	// LanePrecedence beats every FlowSchema kube-apiserver installs except exempt (1) and probes
	// (2), and every shed (ShedPrecedence): an operator is never caught by a jail or a rollout lane.
	LanePrecedence int32 = 50
	// LaneShares is the lane's nominalConcurrencyShares. Next to the v1.37 defaults (Σ 245) it
	// holds ceil(600·10/255) = 24 of 600 seats, about 4 % of the server; lendablePercent 0 keeps
	// those seats free for operators however busy the rest is (see README for Limited vs Exempt).
	LaneShares int32 = 10
	// ShedPrecedence is numerically below rollout lanes (850), kube-system-service-accounts (900)
	// and service-accounts (9000), so a jail catches a workload wherever it would otherwise go, but
	// above the node (400, 500) and leader-election (100, 200) schemas and the break-glass lane.
	ShedPrecedence int32 = 700
)

// serviceAccountGroup is the group every service account of Namespace belongs to.
const serviceAccountGroup = "system:serviceaccounts:" + Namespace
