package breakglass

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/cel-go/cel"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/bulkhead-dev/bulkhead/apf"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/execute"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// admission is one request as a ValidatingAdmissionPolicy sees it.
type admission struct {
	user, operation, group, resource string
	object, oldObject                any
}

// admit evaluates policy on req the way kube-apiserver does: match conditions, then variables,
// then every validation (an error counts as a denial: failurePolicy Fail). It returns "" when
// admitted, else the message of the first validation that refused. The lab tests run the same
// policy in the real API server; this runs it in milliseconds for every case.
func admit(t *testing.T, policy *admissionv1.ValidatingAdmissionPolicy, req admission) string {
	t.Helper()
	env, err := cel.NewEnv(cel.Variable("request", cel.DynType), cel.Variable("object", cel.DynType),
		cel.Variable("oldObject", cel.DynType), cel.Variable("variables", cel.MapType(cel.StringType, cel.DynType)))
	if err != nil {
		t.Fatal(err)
	}
	if !matches(policy, req) {
		return ""
	}
	vars := map[string]any{}
	activation := map[string]any{
		"request": map[string]any{"operation": req.operation, "userInfo": map[string]any{"username": req.user},
			"resource": map[string]any{"group": req.group, "resource": req.resource}},
		"object": fields(t, req.object), "oldObject": fields(t, req.oldObject), "variables": vars,
	}
	eval := func(expr string) (any, error) {
		ast, iss := env.Compile(expr)
		if iss.Err() != nil {
			t.Fatalf("CEL does not compile: %v\n%s", iss.Err(), expr)
		}
		prg, err := env.Program(ast)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := prg.Eval(activation)
		if err != nil {
			return nil, err
		}
		return out.Value(), nil
	}
	for _, mc := range policy.Spec.MatchConditions {
		if v, err := eval(mc.Expression); err != nil || v != true {
			return ""
		}
	}
	for _, v := range policy.Spec.Variables {
		if val, err := eval(v.Expression); err == nil {
			vars[v.Name] = val // an erroring variable is absent: using it fails, as in the server
		}
	}
	for _, v := range policy.Spec.Validations {
		ok, err := eval(v.Expression)
		if err != nil {
			return "error: " + err.Error() + " in " + v.Expression
		}
		if ok != true {
			return v.Message
		}
	}
	return ""
}

func matches(policy *admissionv1.ValidatingAdmissionPolicy, req admission) bool {
	for _, r := range policy.Spec.MatchConstraints.ResourceRules {
		if slices.Contains(r.APIGroups, req.group) && slices.Contains(r.Resources, req.resource) &&
			slices.Contains(r.Operations, admissionv1.OperationType(req.operation)) {
			return true
		}
	}
	return false
}

func fields(t *testing.T, o any) any {
	t.Helper()
	if o == nil {
		return nil
	}
	raw, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// rolloutState is a DaemonSet's state annotation in phase p, as bulkhead writes it.
func rolloutState(t *testing.T, p state.Phase) map[string]string {
	t.Helper()
	st, err := state.New(state.Start{ID: "r1", Kind: state.Update, WavesSpec: "1", Targets: []int{1}, Eligible: 1, Soak: time.Minute,
		Budget: check.DefaultBudget, Lane: execute.LaneNames("obs", "agent"), OriginalHash: "abc"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	st.Phase, st.Wave = p, 1
	ann, err := state.Encode(st)
	if err != nil {
		t.Fatal(err)
	}
	return ann
}

// The names the policy matches are the ones rollout writes (breakglass does not import rollout).
func TestPolicyNamesWhatRolloutWrites(t *testing.T) {
	if rolloutStateAnnotation != state.Annotation || GuardedPodAnnotation != execute.GuardedPodAnnotation ||
		!strings.HasPrefix(execute.NodeLabelKey("obs", "agent"), gateLabelPrefix) {
		t.Fatalf("policy names %s %s %s; rollout writes %s %s %s", rolloutStateAnnotation, GuardedPodAnnotation, gateLabelPrefix,
			state.Annotation, execute.GuardedPodAnnotation, execute.NodeLabelKey("obs", "agent"))
	}
}

func TestTheBreakGlassIdentityMayChangeOnlyDaemonSetsUnderARollout(t *testing.T) {
	m, _ := Desired(InstallOptions{OperatorsGroup: "sre"})
	ds := func(ann map[string]string) *appsv1.DaemonSet {
		return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "obs", Annotations: ann}}
	}
	withImage := func(d *appsv1.DaemonSet, image string) *appsv1.DaemonSet {
		d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "a", Image: image}}
		return d
	}
	tests := []struct {
		name      string
		op        string
		old, new  *appsv1.DaemonSet
		wantAdmit bool
	}{
		{"a kube-system DaemonSet", "UPDATE", ds(nil), withImage(ds(nil), "evil"), false},
		{"creating one", "CREATE", nil, ds(rolloutState(t, state.RollingBack)), false},
		{"a rollout's rollback restores its template", "UPDATE", ds(rolloutState(t, state.RollingBack)), withImage(ds(rolloutState(t, state.RollingBack)), "v1"), true},
		{"a rollout's rollback saves its state", "UPDATE", ds(rolloutState(t, state.RollingBack)), ds(rolloutState(t, state.RolledBack)), true},
		{"an abort of a soaking rollout", "UPDATE", ds(rolloutState(t, state.Soaking)), ds(rolloutState(t, state.RollingBack)), true},
		{"a rollback deletes a new DaemonSet", "DELETE", ds(rolloutState(t, state.RollingBack)), nil, true},
		{"a rollout that completed", "UPDATE", ds(rolloutState(t, state.Complete)), withImage(ds(rolloutState(t, state.Complete)), "evil"), false},
		{"a rollout that rolled back", "DELETE", ds(rolloutState(t, state.RolledBack)), nil, false},
		{"stripping the state", "UPDATE", ds(rolloutState(t, state.Soaking)), ds(nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := admission{user: username, operation: tt.op, group: "apps", resource: "daemonsets"}
			if tt.old != nil {
				req.oldObject = tt.old
			}
			if tt.new != nil {
				req.object = tt.new
			}
			got := admit(t, m.Policy, req)
			if (got == "") != tt.wantAdmit {
				t.Fatalf("decision %q, want admitted: %v", got, tt.wantAdmit)
			}
			if got != "" && !strings.Contains(got, "DaemonSets under a bulkhead rollout") {
				t.Fatalf("refused with %q", got)
			}
		})
	}
	// Anyone else is not this policy's business: RBAC decides.
	if got := admit(t, m.Policy, admission{user: "alice", operation: "UPDATE", group: "apps", resource: "daemonsets", object: ds(nil), oldObject: ds(nil)}); got != "" {
		t.Fatalf("another user refused: %s", got)
	}
}

func TestTheBreakGlassIdentityMayOnlyRemoveGateLabelsFromNodes(t *testing.T) {
	m, _ := Desired(InstallOptions{OperatorsGroup: "sre"})
	gate := execute.NodeLabelKey("obs", "agent")
	node := func(labels map[string]string, taints ...corev1.Taint) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: labels, Annotations: map[string]string{"a": "1"}},
			Spec: corev1.NodeSpec{Taints: taints, PodCIDR: "10.0.0.0/24"}}
	}
	old := node(map[string]string{"kubernetes.io/hostname": "node-1", gate: "1"})
	tests := []struct {
		name      string
		new       *corev1.Node
		wantAdmit bool
	}{
		{"remove the gate label", node(map[string]string{"kubernetes.io/hostname": "node-1"}), true},
		{"nothing changes", node(map[string]string{"kubernetes.io/hostname": "node-1", gate: "1"}), true},
		{"add a gate label", node(map[string]string{"kubernetes.io/hostname": "node-1", gate: "1", execute.NodeLabelKey("kube-system", "x"): "1"}), false},
		{"change another label", node(map[string]string{"kubernetes.io/hostname": "node-2"}), false},
		{"remove another label", node(map[string]string{gate: "1"}), false},
		{"taint it", node(map[string]string{"kubernetes.io/hostname": "node-1"}, corev1.Taint{Key: "x", Effect: corev1.TaintEffectNoExecute}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := admit(t, m.Policy, admission{user: username, operation: "UPDATE", resource: "nodes", object: tt.new, oldObject: old})
			if (got == "") != tt.wantAdmit {
				t.Fatalf("decision %q, want admitted: %v", got, tt.wantAdmit)
			}
		})
	}
	annotated := node(map[string]string{"kubernetes.io/hostname": "node-1"})
	annotated.Annotations["b"] = "2"
	if got := admit(t, m.Policy, admission{user: username, operation: "UPDATE", resource: "nodes", object: annotated, oldObject: old}); got == "" {
		t.Fatal("an annotation change was admitted")
	}
	if got := admit(t, m.Policy, admission{user: username, operation: "DELETE", resource: "nodes", oldObject: old}); got == "" {
		t.Fatal("a node deletion was admitted")
	}
}

func TestTheBreakGlassIdentityMayDeleteOnlyAGuardedRolloutsPods(t *testing.T) {
	m, _ := Desired(InstallOptions{OperatorsGroup: "sre"})
	yes := true
	pod := func(guarded bool, ownerKind string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "obs",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: ownerKind, Name: "agent", UID: "u", Controller: &yes}}}}
		if guarded {
			p.Annotations = map[string]string{GuardedPodAnnotation: "true"}
		}
		return p
	}
	for _, tt := range []struct {
		name      string
		op        string
		pod       *corev1.Pod
		wantAdmit bool
	}{
		{"a guarded rollout's pod", "DELETE", pod(true, "DaemonSet"), true},
		{"any other DaemonSet's pod", "DELETE", pod(false, "DaemonSet"), false},
		{"a Deployment's pod carrying the mark", "DELETE", pod(true, "ReplicaSet"), false},
		{"changing a guarded pod", "UPDATE", pod(true, "DaemonSet"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := admission{user: username, operation: tt.op, resource: "pods", oldObject: tt.pod}
			if tt.op == "UPDATE" {
				req.object = tt.pod
			}
			if got := admit(t, m.Policy, req); (got == "") != tt.wantAdmit {
				t.Fatalf("decision %q, want admitted: %v", got, tt.wantAdmit)
			}
		})
	}
}

func TestShedsWrittenWithTheTokenKeepTheGuardRails(t *testing.T) {
	m, _ := Desired(InstallOptions{OperatorsGroup: "sre"})
	jail := func(id apf.Subject, force bool) (*apf.Subject, any, any) {
		level, schema, err := ShedObjects(ShedRequest{Identity: id, Mode: Mode{Reject: true}, TTL: time.Hour, Force: force}, "alice", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return &id, level, schema
	}
	tests := []struct {
		id      apf.Subject
		force   bool
		wantMsg string // "" admitted
	}{
		{apf.ServiceAccount("obs", "agent"), false, ""},
		{apf.Group("system:serviceaccounts:obs"), false, ""},
		{apf.User("alice"), false, ""},
		{apf.Group("system:masters"), true, "never jail the control plane"},
		{apf.Group("system:nodes"), true, "never jail"},
		{apf.Group("system:authenticated"), true, "never jail"},
		{apf.Group("system:serviceaccounts"), true, "never jail"},
		{apf.Group("system:serviceaccounts:kube-system"), true, "never jail"},
		{apf.ServiceAccount("kube-system", "kube-proxy"), true, "never jail"},
		{apf.User("system:kube-controller-manager"), true, "never jail"},
		{apf.User("system:node:node-1"), true, "never jail"},
		{apf.User("*"), true, "never jail"},
		{apf.Group("*"), true, "never jail"},
		{apf.ServiceAccount(Namespace, ServiceAccountName), false, "refusing to jail bulkhead's own"},
		{apf.ServiceAccount(Namespace, ServiceAccountName), true, ""},
		{apf.Group("sre"), false, "operators' group"},
		{apf.Group("sre"), true, ""},
		{apf.Group("system:serviceaccounts:bulkhead"), false, "refusing to jail"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s force=%v", tt.id, tt.force), func(t *testing.T) {
			_, level, schema := jail(tt.id, tt.force)
			got := admit(t, m.Policy, admission{user: username, operation: "CREATE", group: "flowcontrol.apiserver.k8s.io", resource: "flowschemas", object: schema})
			if tt.wantMsg == "" && got != "" || tt.wantMsg != "" && !strings.Contains(got, tt.wantMsg) {
				t.Fatalf("decision %q, want %q", got, tt.wantMsg)
			}
			if got := admit(t, m.Policy, admission{user: username, operation: "CREATE", group: "flowcontrol.apiserver.k8s.io",
				resource: "prioritylevelconfigurations", object: level}); got != "" {
				t.Fatalf("the jail's level refused: %s", got)
			}
		})
	}
}

func TestTheTokenWritesOnlySheddingShapedAPFObjects(t *testing.T) {
	m, _ := Desired(InstallOptions{OperatorsGroup: "sre"})
	fs := func(mutate func(*admission)) string {
		_, schema, _ := ShedObjects(ShedRequest{Identity: apf.ServiceAccount("obs", "agent"), Mode: Mode{Reject: true}, TTL: time.Hour}, "a", time.Now())
		req := admission{user: username, operation: "CREATE", group: "flowcontrol.apiserver.k8s.io", resource: "flowschemas", object: schema}
		mutate(&req)
		return admit(t, m.Policy, req)
	}
	level := func(spec apf.LevelSpec, p apf.Purpose, op string, old any) string {
		spec.Name = "bulkhead-shed-x"
		pl, err := apf.PriorityLevel(spec, apf.Ownership{Purpose: p})
		if err != nil {
			t.Fatal(err)
		}
		return admit(t, m.Policy, admission{user: username, operation: op, group: "flowcontrol.apiserver.k8s.io", resource: "prioritylevelconfigurations",
			object: pl, oldObject: old})
	}
	zero := int32(0)
	for _, tt := range []struct {
		name    string
		got     string
		wantMsg string
	}{
		{"a shed", fs(func(*admission) {}), ""},
		{"a FlowSchema without bulkhead's labels", fs(func(r *admission) { r.object = unlabelled(r.object) }), "may create only bulkhead's shed flowschemas"},
		{"a rollout lane", fs(func(r *admission) { r.object = relabel(r.object, apf.PurposeRolloutLane) }), "may create only bulkhead's shed"},
		{"the break-glass lane's own schema", fs(func(r *admission) {
			r.operation, r.oldObject = "UPDATE", relabel(r.object, apf.PurposeBreakGlass)
			r.object = relabel(r.object, apf.PurposeBreakGlass)
		}), "change only its shed"},
		{"deleting a built-in schema", fs(func(r *admission) { r.operation, r.oldObject, r.object = "DELETE", unlabelled(r.object), nil }), "delete only its sheds"},
		{"deleting a rollout lane", fs(func(r *admission) {
			r.operation, r.oldObject, r.object = "DELETE", relabel(r.object, apf.PurposeRolloutLane), nil
		}), ""},
		{"a shed ahead of the nodes' schemas", fs(func(r *admission) { r.object = withPrecedence(r.object, 10) }), "matchingPrecedence 700"},
		{"a shed into the exempt level", fs(func(r *admission) { r.object = toLevel(r.object, "exempt") }), "priority level of its own name"},
		{"a jail", level(apf.LevelSpec{Reject: true, BorrowingLimitPercent: &zero}, apf.PurposeShed, "CREATE", nil), ""},
		{"a limit jail of 10 shares", level(apf.LevelSpec{Shares: 10, BorrowingLimitPercent: &zero}, apf.PurposeShed, "CREATE", nil), ""},
		{"a level that takes everyone's seats", level(apf.LevelSpec{Shares: 5000, BorrowingLimitPercent: &zero}, apf.PurposeShed, "CREATE", nil), "at most 10 shares"},
		{"a level that borrows", level(apf.LevelSpec{Shares: 1}, apf.PurposeShed, "CREATE", nil), "lends and borrows nothing"},
		{"a level that lends", level(apf.LevelSpec{Shares: 1, LendablePercent: 50, BorrowingLimitPercent: &zero}, apf.PurposeShed, "CREATE", nil), "lends and borrows nothing"},
		{"squeezing a rollout lane", level(apf.LevelSpec{Reject: true, BorrowingLimitPercent: &zero}, apf.PurposeRolloutLane, "UPDATE",
			mustLevel(t, apf.LevelSpec{Name: "bulkhead-shed-x", Shares: 3, BorrowingLimitPercent: &zero}, apf.PurposeRolloutLane)), ""},
		{"rewriting workload-low", level(apf.LevelSpec{Reject: true, BorrowingLimitPercent: &zero}, apf.PurposeShed, "UPDATE",
			unlabelled(mustLevel(t, apf.LevelSpec{Name: "bulkhead-shed-x", Shares: 100}, apf.PurposeShed))), "change only its shed and rollout-lane"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantMsg == "" && tt.got != "" || tt.wantMsg != "" && !strings.Contains(tt.got, tt.wantMsg) {
				t.Fatalf("decision %q, want %q", tt.got, tt.wantMsg)
			}
		})
	}
}

func TestBreakGlassTokensLiveAtMostADay(t *testing.T) {
	m, _ := Desired(InstallOptions{OperatorsGroup: "sre"})
	token := func(seconds int64) string {
		return admit(t, m.TokenPolicy, admission{user: "alice", operation: "CREATE", resource: "serviceaccounts/token",
			object: &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &seconds}}})
	}
	if got := token(86400); got != "" {
		t.Fatalf("a 24h token refused: %s", got)
	}
	if got := token(365 * 86400); !strings.Contains(got, "at most 24h") {
		t.Fatalf("a year-long token: %q", got)
	}
}

func unlabelled(o any) any {
	c := o.(runtime.Object).DeepCopyObject()
	c.(metav1.Object).SetLabels(nil)
	return c
}

func relabel(o any, p apf.Purpose) any {
	c := o.(runtime.Object).DeepCopyObject()
	m := c.(metav1.Object)
	labels := map[string]string{}
	for k, v := range m.GetLabels() {
		labels[k] = v
	}
	labels[apf.PurposeLabel] = string(p)
	m.SetLabels(labels)
	return c
}

func withPrecedence(o any, p int32) any {
	fs := o.(*flowcontrolv1.FlowSchema).DeepCopy()
	fs.Spec.MatchingPrecedence = p
	return fs
}

func toLevel(o any, level string) any {
	fs := o.(*flowcontrolv1.FlowSchema).DeepCopy()
	fs.Spec.PriorityLevelConfiguration.Name = level
	return fs
}

func mustLevel(t *testing.T, spec apf.LevelSpec, p apf.Purpose) *flowcontrolv1.PriorityLevelConfiguration {
	t.Helper()
	pl, err := apf.PriorityLevel(spec, apf.Ownership{Purpose: p})
	if err != nil {
		t.Fatal(err)
	}
	return pl
}
