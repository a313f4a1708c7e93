package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/bulkhead-dev/bulkhead/apf"
	"github.com/bulkhead-dev/bulkhead/breakglass"
	"github.com/bulkhead-dev/bulkhead/internal/cli"
	"github.com/bulkhead-dev/bulkhead/internal/labtest"
	"github.com/bulkhead-dev/bulkhead/rollout/execute"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// tokenHTTP sends plain HTTP requests with a break-glass token: no bulkhead code between the
// token and the API server, as someone holding the token with curl would.
type tokenHTTP struct {
	client *http.Client
	host   string
}

func newTokenHTTP(t *testing.T, cfg *rest.Config) *tokenHTTP {
	t.Helper()
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &tokenHTTP{client: client, host: cfg.Host}
}

// do sends method path with body (JSON, or a merge patch for PATCH) and returns the status and
// the Status message the API server answered with.
func (h *tokenHTTP) do(t *testing.T, method, path string, body any) (int, string) {
	t.Helper()
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, h.host+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if method == http.MethodPatch {
		req.Header.Set("Content-Type", "application/merge-patch+json")
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var status metav1.Status
	_ = json.Unmarshal(data, &status)
	return resp.StatusCode, status.Message
}

// refused asserts that the API server refused the request with the break-glass policy's message.
func (h *tokenHTTP) refused(t *testing.T, what, method, path string, body any, message string) {
	t.Helper()
	code, msg := h.do(t, method, path, body)
	if code != http.StatusForbidden || !strings.Contains(msg, "ValidatingAdmissionPolicy '"+breakglass.PolicyName+"'") || !strings.Contains(msg, message) {
		t.Errorf("%s: HTTP %d %q; want 403 from policy %s saying %q", what, code, msg, breakglass.PolicyName, message)
		return
	}
	t.Logf("%s: refused: %s", what, msg)
}

// installForRails installs break-glass (TestUninstallLeavesNoBulkheadObject removed it) and
// removes it again at the test's end.
func installForRails(t *testing.T) {
	t.Helper()
	out, _ := mustRun(t, "install")
	if !strings.Contains(out, "rails in force") {
		t.Fatalf("install did not confirm the API server enforces the rails:\n%s", out)
	}
	t.Cleanup(func() { mustRun(t, "uninstall") })
}

// With the break-glass token and plain HTTP requests, the API server refuses what the token must
// not do, with its policy's message: a kube-system DaemonSet, a node, a pod outside a rollout,
// FlowSchemas that would jail the control plane or everyone, and an over-long token.
func TestTheAPIServerHoldsTheBreakGlassTokenToItsRails(t *testing.T) {
	ctx := context.Background()
	installForRails(t)
	h := newTokenHTTP(t, breakGlassConfig(t))

	// A kube-system DaemonSet outside any rollout.
	ds := labtest.AgentDaemonSet("kube-system", "rails-victim", "agent:v1", "")
	must(t, exists(lab.Client.AppsV1().DaemonSets("kube-system").Create(ctx, ds, metav1.CreateOptions{})))
	t.Cleanup(func() { _ = lab.Client.AppsV1().DaemonSets("kube-system").Delete(ctx, ds.Name, metav1.DeleteOptions{}) })
	dsPath := "/apis/apps/v1/namespaces/kube-system/daemonsets/rails-victim"
	h.refused(t, "update a kube-system DaemonSet", http.MethodPatch, dsPath,
		map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "agent", "image": "evil:1"}}}}}},
		"only DaemonSets under a bulkhead rollout")
	h.refused(t, "delete a kube-system DaemonSet", http.MethodDelete, dsPath, nil, "only DaemonSets under a bulkhead rollout")

	// A node: anything but removing a rollout's gate label.
	h.refused(t, "label a node", http.MethodPatch, "/api/v1/nodes/node-0000",
		map[string]any{"metadata": map[string]any{"labels": map[string]string{"pwned": "true"}}}, "only remove bulkhead's rollout gate labels")
	h.refused(t, "taint a node", http.MethodPatch, "/api/v1/nodes/node-0000",
		map[string]any{"spec": map[string]any{"taints": []any{map[string]any{"key": "x", "effect": "NoExecute"}}}}, "only remove bulkhead's rollout gate labels")

	// A pod outside a bulkhead rollout.
	pods, err := lab.Client.CoreV1().Pods("lab").List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("no filler pod to try: %v", err)
	}
	h.refused(t, "delete a pod outside a rollout", http.MethodDelete, "/api/v1/namespaces/lab/pods/"+pods.Items[0].Name, nil,
		"delete only the pods of a guarded bulkhead rollout")

	// FlowSchemas that jail the control plane or everyone: refused even shaped as a forced shed.
	for _, group := range []string{"system:masters", "system:nodes", "system:authenticated"} {
		_, schema, err := breakglass.ShedObjects(breakglass.ShedRequest{Identity: apf.Group(group), Mode: breakglass.Mode{Reject: true}, TTL: time.Hour, Force: true},
			"mallory", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		h.refused(t, "a FlowSchema matching "+group, http.MethodPost, "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas", schema,
			"never jail the control plane's components or everyone")
	}
	_, plain, err := breakglass.ShedObjects(breakglass.ShedRequest{Identity: apf.User("alice"), Mode: breakglass.Mode{Reject: true}, TTL: time.Hour}, "m", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	plain.Labels, plain.Name = nil, "not-bulkheads"
	h.refused(t, "a FlowSchema that is not a shed", http.MethodPost, "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas", plain,
		"may create only bulkhead's shed flowschemas")
	h.refused(t, "rewriting workload-low", http.MethodPatch, "/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations/workload-low",
		map[string]any{"spec": map[string]any{"limited": map[string]any{"nominalConcurrencyShares": 0}}}, "change only its shed and rollout-lane")

	// A token longer than a day, minted by an operator with plain client-go (kubectl create token).
	operator := rest.CopyConfig(lab.Config)
	operator.Impersonate = rest.ImpersonationConfig{UserName: "alice", Groups: []string{breakglass.DefaultOperatorsGroup, "system:authenticated"}}
	opClient, err := kubernetes.NewForConfig(operator)
	if err != nil {
		t.Fatal(err)
	}
	year := int64(365 * 24 * 3600)
	_, err = opClient.CoreV1().ServiceAccounts(breakglass.Namespace).CreateToken(ctx, breakglass.ServiceAccountName,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &year}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "break-glass tokens live at most 24h") {
		t.Errorf("a year-long break-glass token: %v; want refused by %s", err, breakglass.TokenPolicyName)
	}

	// alice's mint (breakGlassConfig above) is on record, on the service account.
	events, err := lab.Client.CoreV1().Events(breakglass.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "reason=" + breakglass.MintReason})
	if err != nil {
		t.Fatal(err)
	}
	recorded := false
	for _, e := range events.Items {
		recorded = recorded || e.InvolvedObject.Name == breakglass.ServiceAccountName && strings.HasPrefix(e.Message, "alice minted a break-glass token for a kubeconfig (1h0m0s)") &&
			strings.Contains(e.Message, "credential JTI=")
	}
	if !recorded {
		t.Errorf("no %s Event names alice's kubeconfig: %+v", breakglass.MintReason, events.Items)
	}

	// The policies compiled against the API server's schemas without warnings.
	for _, name := range []string{breakglass.PolicyName, breakglass.TokenPolicyName} {
		p, err := lab.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if tc := p.Status.TypeChecking; tc != nil && len(tc.ExpressionWarnings) > 0 {
			t.Errorf("policy %s: type-checking warnings %+v", name, tc.ExpressionWarnings)
		}
	}
}

// Through the same token, plain HTTP: a shed of an ordinary service account is created, holds
// (the account's requests are answered 429) and is removed.
func TestTheBreakGlassTokenShedsAnOrdinaryServiceAccount(t *testing.T) {
	ctx := context.Background()
	installForRails(t)
	createServiceAccount(t, "victim", "agent", "view")
	h := newTokenHTTP(t, breakGlassConfig(t))
	level, schema, err := breakglass.ShedObjects(breakglass.ShedRequest{Identity: apf.ServiceAccount("victim", "agent"), Mode: breakglass.Mode{Reject: true},
		TTL: 10 * time.Minute, Reason: "rails test"}, "the token", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		obj  any
	}{{"/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations", level}, {"/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas", schema}} {
		if code, msg := h.do(t, http.MethodPost, c.path, c.obj); code != http.StatusCreated {
			t.Fatalf("POST %s: HTTP %d %s", c.path, code, msg)
		}
	}
	// The jail lets one request execute at a time (kube-apiserver runs a zero-seat level's request
	// when nothing else of it executes: breakglass/README.md) and rejects the rest at once, so
	// the account sends 8 LISTs of every pod at a time; at least one must come back 429 from the
	// shed's flow schema. Plain HTTP, one attempt per request: client-go would retry a 429 ten
	// times.
	created, err := lab.Client.FlowcontrolV1().FlowSchemas().Get(ctx, schema.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	victimConfig := serviceAccountConfig("victim", "agent")
	victim, err := rest.HTTPClientFor(victimConfig)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	answers := map[string]int{}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				answer := "no request"
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, victimConfig.Host+"/api/v1/pods", nil)
				if err == nil {
					var resp *http.Response
					if resp, err = victim.Do(req); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						answer = fmt.Sprintf("HTTP %d, flow schema UID %s", resp.StatusCode, resp.Header.Get("X-Kubernetes-PF-FlowSchema-UID"))
					}
				}
				if err != nil {
					answer = err.Error()
				}
				mu.Lock()
				answers[answer]++
				mu.Unlock()
			})
		}
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return answers[fmt.Sprintf("HTTP %d, flow schema UID %s", http.StatusTooManyRequests, created.UID)] > 0, nil
	})
	if err != nil {
		t.Fatalf("the shed did not hold: none of the account's concurrent LISTs was rejected by it (answers: %v; the shed's UID %s)", answers, created.UID)
	}
	t.Logf("the account's concurrent LISTs: %v (the shed's UID %s)", answers, created.UID)
	for _, path := range []string{"/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas/" + schema.Name,
		"/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations/" + level.Name} {
		if code, msg := h.do(t, http.MethodDelete, path, nil); code != http.StatusOK {
			t.Fatalf("DELETE %s: HTTP %d %s", path, code, msg)
		}
	}
}

// Through the same token, with the bulkhead CLI pointed at the break-glass kubeconfig: a guarded
// update rollout paused in wave 1 is aborted and rolled back: template, pods, strategy and lane,
// every write through the rails.
func TestTheBreakGlassTokenRollsBackAGuardedDaemonSet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	installForRails(t)
	const ns, name = "rails", "agent"
	must(t, lab.ServiceAccount(ctx, ns, name, "view"))
	v1 := labtest.AgentDaemonSet(ns, name, "agent:v1", "")
	if _, err := lab.Client.AppsV1().DaemonSets(ns).Create(ctx, v1, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var original string
	if err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		ds, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || ds.Status.NumberReady != labNodes || ds.Status.UpdatedNumberScheduled != labNodes {
			return false, nil
		}
		_, original, err = execute.CurrentRevision(ctx, lab.Client, ns, name)
		return err == nil, nil
	}); err != nil {
		t.Fatalf("v1 never ran on all %d nodes: %v", labNodes, err)
	}

	// The admin starts the guarded update and is interrupted in wave 1's soak: the rollout pauses.
	v2 := v1.DeepCopy()
	v2.Spec.Template.Spec.Containers[0].Image = "agent:v2"
	v2.TypeMeta = metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"}
	manifest, err := yaml.Marshal(v2)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "v2.yaml")
	if err := os.WriteFile(file, manifest, 0o600); err != nil {
		t.Fatal(err)
	}
	applyCtx, interrupt := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, _, err := runContext(applyCtx, "rollout", "apply", "-f", file, "-n", ns, "--waves", "1,100%", "--soak", "30s", "--interval", "2s")
		done <- err
	}()
	if err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 4*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, st, err := execute.Load(ctx, lab.Client, ns, name)
		return err == nil && st.Phase == state.Soaking && st.Wave == 1, nil
	}); err != nil {
		t.Fatalf("the rollout never reached wave 1's soak: %v", err)
	}
	interrupt()
	<-done
	if _, st, err := execute.Load(ctx, lab.Client, ns, name); err != nil || !st.Paused {
		t.Fatalf("the interrupted rollout is not paused: %v %+v", err, st)
	}

	// The token's kubeconfig, as an operator saves it, and the bulkhead CLI on it.
	kubeconfig, _ := mustRun(t, asOperator("breakglass", "kubeconfig", "--ttl", "1h")...)
	bg := filepath.Join(t.TempDir(), "bg.kubeconfig")
	if err := os.WriteFile(bg, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	lane := func() float64 {
		n, err := lab.FlowCounter(ctx, "apiserver_flowcontrol_dispatched_requests_total", breakglass.LaneName)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := lane()
	if out, stderr, err := runAs(ctx, bg, "rollout", "abort", name, "-n", ns); err != nil {
		t.Fatalf("abort with the token: %v\n%s%s", err, out, stderr)
	}
	out, stderr, err := runAs(ctx, bg, "rollout", "resume", name, "-n", ns, "--interval", "2s")
	if err == nil || !strings.Contains(err.Error(), "rolled back: aborted by user") {
		t.Fatalf("resume with the token: %v\n%s%s", err, out, stderr)
	}
	t.Logf("the rollback through the token:\n%s", out)
	dispatched := lane() - before

	ds, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := ds.Spec.Template.Spec.Containers[0].Image; img != "agent:v1" || ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
		t.Fatalf("after the rollback: image %s, strategy %s; want agent:v1 and RollingUpdate", img, ds.Spec.UpdateStrategy.Type)
	}
	if _, st, err := execute.Load(ctx, lab.Client, ns, name); err != nil || st.Phase != state.RolledBack {
		t.Fatalf("state after the rollback: %v %s", err, st.Phase)
	}
	if err := wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := execute.Pods(ctx, lab.Client, ds)
		if err != nil {
			return false, err
		}
		at := 0
		for _, p := range pods {
			if p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == original {
				at++
			}
		}
		return at == labNodes, nil
	}); err != nil {
		t.Fatalf("not every node back on the original revision: %v", err)
	}
	if _, err := lab.Client.FlowcontrolV1().FlowSchemas().Get(ctx, execute.LaneNames(ns, name).FlowSchema, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the rollout's lane is still there: %v", err)
	}
	// The abort, the resume's reads and the rollback's writes all travelled the lane.
	if dispatched < 12 {
		t.Fatalf("%v requests dispatched in the break-glass lane, want the whole rollback's (at least 12)", dispatched)
	}
	t.Logf("%v requests dispatched in flow schema %s by the abort, resume and rollback", dispatched, breakglass.LaneName)
}

// runContext runs a bulkhead command in-process as the lab's admin, bounded by ctx.
func runContext(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	return runAs(ctx, lab.Kubeconfig, args...)
}

// runAs runs a bulkhead command in-process with the given kubeconfig.
func runAs(ctx context.Context, kubeconfig string, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	root := cli.NewRootCommand(&out, &errOut)
	root.SetArgs(append([]string{"--kubeconfig", kubeconfig}, args...))
	err = root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}
