package breakglass

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/bulkhead-dev/bulkhead/apf"
	"github.com/bulkhead-dev/bulkhead/internal/rbacdoc"
)

func TestDesiredBuildsAnOwnedLaneForBulkheadAndTheOperators(t *testing.T) {
	m, err := Desired(InstallOptions{OperatorsGroup: "sre"})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range m.Objects() {
		meta := o.(metav1.Object)
		if !apf.IsManaged(meta) || meta.GetLabels()[apf.PurposeLabel] != string(apf.PurposeBreakGlass) {
			t.Errorf("%T %s lacks the ownership labels uninstall finds it by: %v", o, meta.GetName(), meta.GetLabels())
		}
		if o.GetObjectKind().GroupVersionKind().Kind == "" {
			t.Errorf("%T %s has no kind; --dry-run output would not apply", o, meta.GetName())
		}
	}
	lim := m.Level.Spec.Limited
	if m.Level.Spec.Type != flowcontrolv1.PriorityLevelEnablementLimited || *lim.NominalConcurrencyShares != LaneShares ||
		*lim.LendablePercent != 0 || lim.LimitResponse.Type != flowcontrolv1.LimitResponseTypeQueue {
		t.Fatalf("lane level = %+v; want Limited, %d shares, lending nothing, queueing", lim, LaneShares)
	}
	fs := m.Schema.Spec
	if fs.MatchingPrecedence != LanePrecedence || fs.PriorityLevelConfiguration.Name != LaneName ||
		fs.DistinguisherMethod == nil || fs.DistinguisherMethod.Type != flowcontrolv1.FlowDistinguisherMethodByUserType {
		t.Fatalf("lane schema = %+v", fs)
	}
	subjects := fs.Rules[0].Subjects
	if len(subjects) != 2 || subjects[0].ServiceAccount == nil || subjects[0].ServiceAccount.Name != ServiceAccountName ||
		subjects[1].Group == nil || subjects[1].Group.Name != "sre" {
		t.Fatalf("lane subjects = %+v; want bulkhead's service account and group sre", subjects)
	}
	if m.Schema.Annotations[OperatorsGroupAnnotation] != "sre" {
		t.Fatalf("operators group not recorded: %v", m.Schema.Annotations)
	}
	token := m.TokenRole.Rules
	if len(token) != 1 || token[0].Resources[0] != "serviceaccounts/token" || token[0].ResourceNames[0] != ServiceAccountName || token[0].Verbs[0] != "create" {
		t.Fatalf("token role = %+v; want create serviceaccounts/token on %s only", token, ServiceAccountName)
	}
	if m.TokenBinding.Subjects[0].Kind != rbacv1.GroupKind || m.TokenBinding.Subjects[0].Name != "sre" {
		t.Fatalf("token role bound to %+v, want group sre", m.TokenBinding.Subjects)
	}
	if m.ServiceAccount.AutomountServiceAccountToken == nil || *m.ServiceAccount.AutomountServiceAccountToken {
		t.Fatal("the break-glass account must not be mounted into pods")
	}
}

func TestDesiredAcceptsGroupsOfPeople(t *testing.T) {
	for _, group := range []string{"sre", "oidc:platform-oncall", "team@example.com"} {
		if _, err := Desired(InstallOptions{OperatorsGroup: group}); err != nil {
			t.Errorf("%s: %v", group, err)
		}
	}
}

// The ClusterRole holds no verb a rollback or a shed does not use, and nothing that would let the
// token grow its own rights.
func TestRulesGrantOnlyWhatARollbackAndAShedUse(t *testing.T) {
	want := map[string]string{
		"flowcontrol.apiserver.k8s.io/flowschemas":                 "get,list,create,patch,delete",
		"flowcontrol.apiserver.k8s.io/prioritylevelconfigurations": "get,list,create,patch,delete",
		"apps/daemonsets":          "get,list,patch,update,delete",
		"apps/controllerrevisions": "get,list",
		"/pods":                    "get,list,delete",
		"/nodes":                   "get,list,patch",
		"/events":                  "create",
		"/metrics":                 "get",
	}
	got := map[string]string{}
	for _, r := range Rules {
		for _, res := range r.Resources {
			got[r.APIGroups[0]+"/"+res] = strings.Join(r.Verbs, ",")
		}
		for _, u := range r.NonResourceURLs {
			got[u] = strings.Join(r.Verbs, ",")
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rules = %v\nwant %v", got, want)
	}
}

func TestRulesGrantNoSecretsAndNoRBAC(t *testing.T) {
	for _, r := range Rules {
		for _, res := range r.Resources {
			if res == "*" || res == "secrets" || strings.HasPrefix(res, "roles") || strings.HasPrefix(res, "clusterrole") {
				t.Errorf("rule %+v grants %s", r, res)
			}
		}
		for _, v := range r.Verbs {
			if v == "*" || v == "escalate" || v == "bind" || v == "impersonate" {
				t.Errorf("rule %+v grants verb %s", r, v)
			}
		}
	}
}

func TestDesiredRefusesOperatorsGroupsThatWouldBreakTheLane(t *testing.T) {
	tests := []struct{ group, wantErr string }{
		{"", "must not be empty"},
		{" sre", "leading or trailing spaces"},
		{"sre oncall", "whitespace"},
		{"sre\x00", "control characters"},
		{"*", "every group"},
		{strings.Repeat("g", 300), "at most 253"},
		{"system:masters", "exempt from APF already"},
		{"system:authenticated", "whole cluster"},
		{"system:nodes", "every kubelet"},
		{"system:serviceaccounts", "every pod running as a service account could mint"},
		{"system:serviceaccounts:ci", "every pod running as a service account of namespace ci could mint"},
		{"system:bootstrappers", "reserved for Kubernetes components"},
	}
	for _, tt := range tests {
		t.Run(tt.group, func(t *testing.T) {
			if _, err := Desired(InstallOptions{OperatorsGroup: tt.group}); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	owned := func() *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bulkhead", Labels: ownedLabels()}}
	}
	desired := owned()
	foreign := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bulkhead"}}
	terminating := owned()
	terminating.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	extraLabel := owned()
	extraLabel.Labels["team"] = "sre"
	lostLabel := owned()
	delete(lostLabel.Labels, apf.PurposeLabel)

	tests := []struct {
		name     string
		existing metav1.Object
		same     bool
		want     Action
		wantErr  string
	}{
		{"absent", nil, false, Created, ""},
		{"identical", owned(), true, Unchanged, ""},
		{"someone else's label is theirs to keep", extraLabel, true, Unchanged, ""},
		{"spec differs", owned(), false, Updated, ""},
		{"our label lost", lostLabel, true, Updated, ""},
		{"not ours", foreign, true, "", "not managed by bulkhead"},
		{"being deleted", terminating, true, "", "is being deleted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decide("Namespace", tt.existing, desired, tt.same)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("decide = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestComparisonsSeeOnlyWhatBulkheadSets(t *testing.T) {
	m, err := Desired(InstallOptions{OperatorsGroup: "sre"})
	if err != nil {
		t.Fatal(err)
	}
	// What the API server returns: the same spec plus server-set metadata.
	policy := m.Policy.DeepCopy()
	policy.ResourceVersion, policy.UID = "42", "u"
	if !samePolicy(policy, m.Policy) {
		t.Error("a stored policy equal to the desired one compared different")
	}
	other, _ := Desired(InstallOptions{OperatorsGroup: "platform"})
	if samePolicy(m.Policy, other.Policy) || sameRoleBinding(m.TokenBinding, other.TokenBinding) {
		t.Error("a changed operators group compared equal")
	}
	merged := mergePolicy(m.Policy, other.Policy)
	if !samePolicy(merged, other.Policy) || merged.ResourceVersion != m.Policy.ResourceVersion {
		t.Errorf("merge did not carry the new group: %+v", merged.Spec.Variables)
	}
	role := m.ClusterRole.DeepCopy()
	role.Rules = role.Rules[1:]
	if sameClusterRole(role, m.ClusterRole) || !sameClusterRole(mergeClusterRole(role, m.ClusterRole), m.ClusterRole) {
		t.Error("cluster role rules not compared or merged")
	}
	binding := m.ClusterRoleBinding.DeepCopy()
	binding.RoleRef.Name = "cluster-admin"
	if err := bindingConflict("ClusterRoleBinding", binding.Name, binding.RoleRef, m.ClusterRoleBinding.RoleRef); err == nil ||
		!strings.Contains(err.Error(), "a roleRef cannot change") {
		t.Errorf("changed roleRef: %v", err)
	}
}

func TestWriteYAMLPrintsEveryObjectWithoutStatus(t *testing.T) {
	m, err := Desired(InstallOptions{OperatorsGroup: "sre"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteYAML(&buf, m.Objects()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if docs := strings.Count(out, "\n---\n") + 1; docs != len(m.Objects()) {
		t.Fatalf("%d YAML documents, want %d:\n%s", docs, len(m.Objects()), out)
	}
	for _, want := range []string{"kind: FlowSchema", "matchingPrecedence: 50", "kind: PriorityLevelConfiguration", "lendablePercent: 0",
		"nominalConcurrencyShares: 10", "name: sre", "kind: ClusterRole", "serviceaccounts/token"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run YAML lacks %q", want)
		}
	}
	for _, unwanted := range []string{"status:", "creationTimestamp"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("dry-run YAML has %q", unwanted)
		}
	}
}

func TestKubeconfigEmbedsTheCAAndTheToken(t *testing.T) {
	base := &rest.Config{Host: "https://10.0.0.1:6443", TLSClientConfig: rest.TLSClientConfig{CAData: []byte("CA"), ServerName: "kubernetes", CertData: []byte("client-cert")}}
	cfg, err := Kubeconfig(base, "tok")
	if err != nil {
		t.Fatal(err)
	}
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	restCfg, err := clientcmd.RESTConfigFromKubeConfig(data)
	if err != nil {
		t.Fatalf("the printed kubeconfig does not load: %v", err)
	}
	if restCfg.Host != base.Host || string(restCfg.CAData) != "CA" || restCfg.BearerToken != "tok" || restCfg.ServerName != "kubernetes" {
		t.Fatalf("loaded %+v", restCfg)
	}
	if len(restCfg.CertData) != 0 {
		t.Fatal("the caller's client certificate leaked into the break-glass kubeconfig")
	}
	if _, err := Kubeconfig(&rest.Config{Host: "h", TLSClientConfig: rest.TLSClientConfig{CAFile: "/nonexistent/ca.crt"}}, "t"); err == nil ||
		!strings.Contains(err.Error(), "/nonexistent/ca.crt") {
		t.Fatalf("unreadable CA file: %v", err)
	}
}

func TestTokenConfigDropsTheCallersIdentity(t *testing.T) {
	base := &rest.Config{Host: "https://h", Username: "u", Password: "p", BearerToken: "mine",
		Impersonate:     rest.ImpersonationConfig{UserName: "someone"},
		TLSClientConfig: rest.TLSClientConfig{CAData: []byte("CA"), CertData: []byte("c"), KeyData: []byte("k")}}
	cfg := TokenConfig(base, "bg")
	if cfg.BearerToken != "bg" || cfg.Username != "" || cfg.Impersonate.UserName != "" || len(cfg.CertData) != 0 || string(cfg.CAData) != "CA" {
		t.Fatalf("token config = %+v", cfg)
	}
}

func TestCheckTokenTTL(t *testing.T) {
	for _, ok := range []time.Duration{10 * time.Minute, time.Hour, 24 * time.Hour} {
		if err := CheckTokenTTL(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []time.Duration{0, -time.Hour, 9 * time.Minute, 25 * time.Hour} {
		if err := CheckTokenTTL(bad); err == nil || !strings.Contains(err.Error(), "--ttl") {
			t.Errorf("%s: error = %v", bad, err)
		}
	}
}

func TestWriteShedTable(t *testing.T) {
	now := time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	if err := WriteShedTable(&buf, nil, nil, now); err != nil || buf.String() != "No sheds.\n" {
		t.Fatalf("empty table = %q, %v", buf.String(), err)
	}
	buf.Reset()
	sheds := []Shed{
		{Name: "bulkhead-shed-sa-obs.agent", Identity: "serviceaccount obs/agent", Mode: "reject", By: "alice", Reason: "LIST storm", Expires: now.Add(29*time.Minute + 30*time.Second)},
		{Name: "bulkhead-shed-user-x", Identity: "user x", Mode: "limit 2", Invalid: "bad expiry"},
	}
	if err := WriteShedTable(&buf, sheds, nil, now); err != nil {
		t.Fatal(err)
	}
	want := `NAME                        IDENTITY                  MODE     EXPIRES IN  BY     REASON
bulkhead-shed-sa-obs.agent  serviceaccount obs/agent  reject   29m30s      alice  LIST storm
bulkhead-shed-user-x        user x                    limit 2  ?           -      INVALID: bad expiry
`
	if buf.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", buf.String(), want)
	}
	buf.Reset()
	traffic := map[string]Traffic{"bulkhead-shed-sa-obs.agent": {Rejected: 1952, Admitted: 240}}
	if err := WriteShedTable(&buf, sheds[:1], traffic, now); err != nil {
		t.Fatal(err)
	}
	want = `NAME                        IDENTITY                  MODE    EXPIRES IN  BY     REJECTED  ADMITTED  REASON
bulkhead-shed-sa-obs.agent  serviceaccount obs/agent  reject  29m30s      alice  1952      240       LIST storm
`
	if buf.String() != want {
		t.Fatalf("table with traffic:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func ptr[T any](v T) *T { return &v }

// deploy/breakglass/install.yaml is for those who apply manifests rather than run install; it
// must be exactly what install creates with the default operators' group.
func TestDeployManifestIsTheDryRunOutput(t *testing.T) {
	m, err := Desired(InstallOptions{OperatorsGroup: DefaultOperatorsGroup})
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := WriteYAML(&want, m.Objects()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../deploy/breakglass/install.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var body []string
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if !strings.HasPrefix(line, "#") {
			body = append(body, line)
		}
	}
	if got := strings.Join(body, ""); got != want.String() {
		t.Fatalf("deploy/breakglass/install.yaml differs from bulkhead install --dry-run; regenerate it:\n%s", got)
	}
}

// The README's RBAC tables are what install grants: a review of bulkhead's rights reads them.
func TestREADMERBACTablesAreTheInstalledRoles(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	tables, err := rbacdoc.Tables(string(data))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Desired(InstallOptions{OperatorsGroup: DefaultOperatorsGroup})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"ClusterRole " + ClusterRoleName: rbacdoc.Expand(m.ClusterRole.Rules),
		"Role " + DiscoveryRoleName:      rbacdoc.Expand(m.DiscoveryRole.Rules),
		"Role " + TokenRoleName:          rbacdoc.Expand(m.TokenRole.Rules),
	}
	for _, d := range rbacdoc.Diff(tables, want) {
		t.Error("README.md: " + d)
	}
}
