package e2e

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"

	"github.com/bulkhead-dev/bulkhead/controller/api/v1alpha1"
	"github.com/bulkhead-dev/bulkhead/controller/hold"
)

func TestAnInvalidPolicyIsRefusedNamingTheField(t *testing.T) {
	ctx := context.Background()
	install(t, ctx)
	tests := []struct {
		name string
		spec map[string]any
		want []string
	}{
		{"no namespaces", map[string]any{"mode": "guard"}, []string{"spec.namespaces", "set namespaces or namespaceSelector"}},
		{"unknown mode", map[string]any{"namespaces": []any{"a"}, "mode": "enforce"}, []string{"spec.mode", `"enforce"`}},
		{"waves going down", map[string]any{"namespaces": []any{"a"}, "waves": []any{"5%", "1%", "100%"}}, []string{"spec.waves", "strictly increase"}},
		{"waves not ending at 100%", map[string]any{"namespaces": []any{"a"}, "waves": []any{"2", "50%"}}, []string{"spec.waves", "last wave must be 100%"}},
		{"a 0% wave", map[string]any{"namespaces": []any{"a"}, "waves": []any{"0%", "100%"}}, []string{"spec.waves[0]", "above 0%"}},
		{"a soak too short", map[string]any{"namespaces": []any{"a"}, "soak": "500ms"}, []string{"spec.soak", "between 1s and 24h"}},
		{"a soak that is no duration", map[string]any{"namespaces": []any{"a"}, "soak": "soon"}, []string{"spec.soak", "should match"}},
		{"a budget over 100%", map[string]any{"namespaces": []any{"a"}, "budget": map[string]any{"cpu": "150%"}}, []string{"spec.budget[cpu]", "at most 100%"}},
		{"an unknown resource", map[string]any{"namespaces": []any{"a"}, "budget": map[string]any{"disk": "5%"}}, []string{"spec.budget", "cpu, memory and seats"}},
		{"In without values", map[string]any{"namespaceSelector": map[string]any{"matchExpressions": []any{map[string]any{"key": "team", "operator": "In"}}}},
			[]string{"spec.namespaceSelector.matchExpressions[0].values", "need values"}},
		{"a namespace that is no name", map[string]any{"namespaces": []any{"Agents!"}}, []string{"spec.namespaces[0]", "should match"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": v1alpha1.GroupVersion.String(), "kind": "RolloutPolicy",
				"metadata": map[string]any{"name": "invalid"}, "spec": tt.spec}}
			_, err := dyn(t).Resource(v1alpha1.Resource).Create(ctx, u, metav1.CreateOptions{})
			if err == nil {
				_ = dyn(t).Resource(v1alpha1.Resource).Delete(ctx, "invalid", metav1.DeleteOptions{})
				t.Fatalf("the API server accepted %v", tt.spec)
			}
			if !apierrors.IsInvalid(err) || !contains(err.Error(), tt.want...) {
				t.Fatalf("error %v\nwant an Invalid error containing %q", err, tt.want)
			}
			if _, err := dyn(t).Resource(v1alpha1.Resource).Get(ctx, "invalid", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Fatalf("a refused policy exists: %v", err)
			}
		})
	}
}

// No controller runs in this test: admission alone holds the DaemonSet in scope, and nothing
// else is touched.
func TestANewDaemonSetInScopeGetsNoPodWhileTheControllerIsDown(t *testing.T) {
	ctx := context.Background()
	install(t, ctx)
	createPolicy(t, ctx, "agents", map[string]any{"namespaces": []any{"agents"}}, "agents")
	for _, ns := range []string{"other", "kube-system", "bulkhead"} {
		namespace(t, ctx, ns, nil)
	}
	type tcase struct {
		ds       *appsv1.DaemonSet
		manager  string
		wantHeld bool
	}
	optedOut := agent("agents", "opted-out", "agent:v1")
	optedOut.Labels = map[string]string{v1alpha1.OptOutLabel: "true"}
	cases := []tcase{
		{agent("agents", "telemetry", "agent:v1"), "", true},
		{agent("other", "telemetry", "agent:v1"), "", false},
		{agent("kube-system", "telemetry", "agent:v1"), "", false},
		{restricted(agent("bulkhead", "telemetry", "agent:v1")), "", false},
		{optedOut, "", false},
		// bulkhead's own writes (bulkhead rollout apply gates the DaemonSet itself).
		{agent("agents", "by-bulkhead", "agent:v1"), hold.FieldManager, false},
	}
	policy := &v1alpha1.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Name: "agents"}, Spec: v1alpha1.RolloutPolicySpec{Namespaces: []string{"agents"}}}
	for _, c := range cases {
		if _, err := lab.Client.AppsV1().DaemonSets(c.ds.Namespace).Create(ctx, c.ds, metav1.CreateOptions{FieldManager: c.manager}); err != nil {
			t.Fatalf("create %s/%s: %v", c.ds.Namespace, c.ds.Name, err)
		}
		t.Cleanup(func() {
			_ = lab.Client.AppsV1().DaemonSets(c.ds.Namespace).Delete(context.Background(), c.ds.Name, metav1.DeleteOptions{})
		})
	}
	for _, c := range cases {
		if !c.wantHeld {
			waitPods(t, ctx, c.ds, nodes)
			got := settled(t, ctx, c.ds.Namespace, c.ds.Name)
			if hold.Held(got) != "" || got.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
				t.Errorf("%s/%s is out of scope but was changed: %s", c.ds.Namespace, c.ds.Name, describe(got))
			}
		}
		if c.manager == "" {
			selected, err := policy.Selects(map[string]string{corev1.LabelMetadataName: c.ds.Namespace}, c.ds)
			if err != nil || selected != c.wantHeld {
				t.Errorf("%s/%s: the controller's selector says %v (%v), admission held it: %v", c.ds.Namespace, c.ds.Name, selected, err, c.wantHeld)
			}
		}
	}

	held := settled(t, ctx, "agents", "telemetry")
	if hold.Held(held) != hold.HeldCreate || held.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType {
		t.Fatalf("agents/telemetry: %s; want held for a create with OnDelete", describe(held))
	}
	requested, ok, err := hold.RequestedStrategy(held)
	one := intstr.FromInt32(1)
	if err != nil || !ok || requested.Type != appsv1.RollingUpdateDaemonSetStrategyType || requested.RollingUpdate == nil ||
		!reflect.DeepEqual(requested.RollingUpdate.MaxUnavailable, &one) {
		t.Fatalf("requested strategy %+v, %v, %v; want the manifest's RollingUpdate with maxUnavailable 1", requested, ok, err)
	}
	free := settled(t, ctx, "other", "telemetry")
	if user := hold.UserTemplate(held.Spec.Template); !reflect.DeepEqual(user, free.Spec.Template) {
		t.Fatalf("the held template less the hold differs from the same manifest unheld:\n%+v\n%+v", user.Spec, free.Spec.Template.Spec)
	}
	// Held means no pod, now and a while later: the DaemonSet controller has seen it and
	// found no node it may run on.
	for range 3 {
		ds := settled(t, ctx, "agents", "telemetry")
		if ds.Status.DesiredNumberScheduled != 0 || len(podsByNode(t, ctx, ds)) != 0 {
			t.Fatalf("a held DaemonSet got pods: desired %d, pods %v", ds.Status.DesiredNumberScheduled, podsByNode(t, ctx, ds))
		}
		time.Sleep(time.Second)
	}
}

func TestAnUpdateWithANewPodTemplateKeepsEveryOldPod(t *testing.T) {
	ctx := context.Background()
	install(t, ctx)
	namespace(t, ctx, "fleet", nil)
	ds := agent("fleet", "agent", "agent:v1")
	if _, err := lab.Client.AppsV1().DaemonSets("fleet").Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		_ = lab.Client.AppsV1().DaemonSets("fleet").Delete(context.Background(), "agent", metav1.DeleteOptions{})
	})
	before := waitPods(t, ctx, ds, nodes)

	// The namespace joins the policy's scope by its label: the running DaemonSet is untouched.
	team := map[string]string{"bulkhead-test/team": "fleet"}
	namespace(t, ctx, "fleet-probe", team)
	createPolicy(t, ctx, "fleet", map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"bulkhead-test/team": "fleet"}}}, "")
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": team}})
	for _, ns := range []string{"fleet", "fleet-probe"} {
		if _, err := lab.Client.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatalf("label namespace %s: %v", ns, err)
		}
	}
	// Admission sees the label once its namespace cache has it: wait with dry-run updates.
	v2 := func() *appsv1.DaemonSet {
		cur, err := lab.Client.AppsV1().DaemonSets("fleet").Get(ctx, "agent", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		cur.Spec.Template.Spec.Containers[0].Image = "agent:v2"
		return cur
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		out, err := lab.Client.AppsV1().DaemonSets("fleet").Update(ctx, v2(), metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && hold.Held(out) == hold.HeldUpdate, nil
	})
	if err != nil {
		t.Fatalf("admission never held an update in the labelled namespace: %v", err)
	}
	if after := podsByNode(t, ctx, ds); !reflect.DeepEqual(after, before) {
		t.Fatalf("labelling the namespace changed pods")
	}

	updated, err := lab.Client.AppsV1().DaemonSets("fleet").Update(ctx, v2(), metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if hold.Held(updated) != hold.HeldUpdate || updated.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType ||
		updated.Spec.Template.Spec.Affinity != nil || updated.Spec.Template.Spec.Containers[0].Image != "agent:v2" {
		t.Fatalf("the update: %s, image %s; want held as an update, OnDelete, the new template ungated", describe(updated), updated.Spec.Template.Spec.Containers[0].Image)
	}
	for range 4 {
		got := settled(t, ctx, "fleet", "agent")
		if after := podsByNode(t, ctx, ds); !reflect.DeepEqual(after, before) || got.Status.UpdatedNumberScheduled != 0 {
			t.Fatalf("old pods replaced: %d updated; pods before %v, now %v", got.Status.UpdatedNumberScheduled, before, after)
		}
		time.Sleep(time.Second)
	}
	// A change that is not a new template (a label) of a DaemonSet no longer held passes
	// untouched; here it is held, so the label lands and every guard stays.
	relabel, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{"tier": "observability"}}})
	out, err := lab.Client.AppsV1().DaemonSets("fleet").Patch(ctx, "agent", types.MergePatchType, relabel, metav1.PatchOptions{})
	if err != nil || out.Labels["tier"] != "observability" || out.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType || hold.Held(out) != hold.HeldUpdate {
		t.Fatalf("a label on a held DaemonSet: %v, %s", err, describe(out))
	}
}

// userManifest is what a GitOps tool holds in git: its own required node affinity (two
// terms, ORed) and a RollingUpdate strategy.
func userManifest(image string) map[string]any {
	return map[string]any{
		"apiVersion": "apps/v1", "kind": "DaemonSet",
		"metadata": map[string]any{"name": "agent", "namespace": "gitops"},
		"spec": map[string]any{
			"selector":       map[string]any{"matchLabels": map[string]any{"app": "agent"}},
			"updateStrategy": map[string]any{"type": "RollingUpdate", "rollingUpdate": map[string]any{"maxUnavailable": "10%"}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": "agent"}},
				"spec": map[string]any{
					"serviceAccountName": "agent",
					"containers":         []any{map[string]any{"name": "agent", "image": image}},
					"affinity": map[string]any{"nodeAffinity": map[string]any{"requiredDuringSchedulingIgnoredDuringExecution": map[string]any{
						"nodeSelectorTerms": []any{
							map[string]any{"matchExpressions": []any{map[string]any{"key": "kubernetes.io/os", "operator": "In", "values": []any{"linux"}}}},
							map[string]any{"matchFields": []any{map[string]any{"key": "metadata.name", "operator": "NotIn", "values": []any{"nowhere"}}}},
						}}}},
				},
			},
		},
	}
}

func applyManifest(ctx context.Context, manifest map[string]any, manager string) (*appsv1.DaemonSet, error) {
	data, err := json.Marshal(manifest)
	if err != nil {
		return nil, err
	}
	force := true
	return lab.Client.AppsV1().DaemonSets("gitops").Patch(ctx, "agent", types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: manager, Force: &force})
}

func TestReApplyingAHeldManifestChangesNothing(t *testing.T) {
	ctx := context.Background()
	install(t, ctx)
	createPolicy(t, ctx, "gitops", map[string]any{"namespaces": []any{"gitops"}}, "gitops")
	t.Cleanup(func() {
		_ = lab.Client.AppsV1().DaemonSets("gitops").Delete(context.Background(), "agent", metav1.DeleteOptions{})
	})

	first, err := applyManifest(ctx, userManifest("agent:v1"), "argocd-controller")
	if err != nil {
		t.Fatalf("first apply: %v", err)
	}
	gated := func(ds *appsv1.DaemonSet) bool {
		terms := ds.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		if len(terms) != 2 {
			return false
		}
		for _, term := range terms {
			found := false
			for _, e := range term.MatchExpressions {
				found = found || (e.Key == hold.HoldKey && e.Operator == corev1.NodeSelectorOpExists)
			}
			if !found {
				return false
			}
		}
		return ds.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType && hold.Held(ds) == hold.HeldCreate
	}
	if !gated(first) {
		t.Fatalf("first apply not held in both of the user's terms: %s", describe(first))
	}
	// The DaemonSet controller writes status once it has seen the DaemonSet: wait for that,
	// so that any later change of resourceVersion is a write of the re-applies.
	rv := stableResourceVersion(t, ctx, "gitops", "agent")
	for i := range 3 {
		again, err := applyManifest(ctx, userManifest("agent:v1"), "argocd-controller")
		if err != nil {
			t.Fatalf("re-apply %d: %v", i, err)
		}
		if again.ResourceVersion != rv || !gated(again) {
			t.Fatalf("re-apply %d wrote the DaemonSet (resourceVersion %s → %s) or lost its guards: %s", i, rv, again.ResourceVersion, describe(again))
		}
	}
	// Another tool replaces the whole object with the manifest (no bulkhead annotation, no
	// hold, RollingUpdate): every guard comes back.
	cur, err := lab.Client.AppsV1().DaemonSets("gitops").Get(ctx, "agent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	replaced := cur.DeepCopy()
	replaced.Annotations = nil
	replaced.Spec.Template.Spec.Affinity = first.Spec.Template.Spec.Affinity.DeepCopy()
	for i := range replaced.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		term := &replaced.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[i]
		var keep []corev1.NodeSelectorRequirement
		for _, e := range term.MatchExpressions {
			if e.Key != hold.HoldKey {
				keep = append(keep, e)
			}
		}
		term.MatchExpressions = keep
	}
	ten := intstr.FromString("10%")
	replaced.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType, RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &ten}}
	out, err := lab.Client.AppsV1().DaemonSets("gitops").Update(ctx, replaced, metav1.UpdateOptions{FieldManager: "helm"})
	if err != nil || !gated(out) {
		t.Fatalf("a replace lost the hold: %v, %s", err, describe(out))
	}
	// A new revision in git: the new template, still held.
	v2, err := applyManifest(ctx, userManifest("agent:v2"), "argocd-controller")
	if err != nil || !gated(v2) || v2.Spec.Template.Spec.Containers[0].Image != "agent:v2" {
		t.Fatalf("a new revision: %v, %s", err, describe(v2))
	}
	if got := settled(t, ctx, "gitops", "agent"); got.Status.DesiredNumberScheduled != 0 || len(podsByNode(t, ctx, got)) != 0 {
		t.Fatalf("the held DaemonSet got pods")
	}
}

func TestAHaltedPodTemplateIsRefusedWhenReappliedAndANewOneIsHeld(t *testing.T) {
	ctx := context.Background()
	install(t, ctx)
	createPolicy(t, ctx, "halts", map[string]any{"namespaces": []any{"halts"}}, "halts")
	ds := agent("halts", "agent", "agent:v1")
	if _, err := lab.Client.AppsV1().DaemonSets("halts").Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		_ = lab.Client.AppsV1().DaemonSets("halts").Delete(context.Background(), "agent", metav1.DeleteOptions{})
	})
	// What the rollout core does, written as bulkhead (admission lets its writes through):
	// finish v1 (release the hold), later roll back a halted v2.
	// A conflict re-reads and retries, as the rollout core's writes do: the DaemonSet
	// controller's status updates move the resourceVersion under any read.
	asBulkhead := func(change func(*appsv1.DaemonSet)) *appsv1.DaemonSet {
		t.Helper()
		var out *appsv1.DaemonSet
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := lab.Client.AppsV1().DaemonSets("halts").Get(ctx, "agent", metav1.GetOptions{})
			if err != nil {
				return err
			}
			change(cur)
			out, err = lab.Client.AppsV1().DaemonSets("halts").Update(ctx, cur, metav1.UpdateOptions{FieldManager: hold.FieldManager})
			return err
		})
		if err != nil {
			t.Fatalf("bulkhead's write: %v", err)
		}
		return out
	}
	strategy, _, err := hold.RequestedStrategy(settled(t, ctx, "halts", "agent"))
	if err != nil {
		t.Fatal(err)
	}
	release := func(d *appsv1.DaemonSet) {
		d.Spec.Template = hold.UserTemplate(d.Spec.Template)
		d.Spec.UpdateStrategy = strategy
		delete(d.Annotations, hold.HeldAnnotation)
		delete(d.Annotations, hold.RequestedStrategyAnnotation)
	}
	asBulkhead(release)
	v1Pods := waitPods(t, ctx, ds, nodes)

	updateAs := func(image string, dryRun []string) (*appsv1.DaemonSet, error) {
		cur, err := lab.Client.AppsV1().DaemonSets("halts").Get(ctx, "agent", metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		cur.Spec.Template.Spec.Containers[0].Image = image
		return lab.Client.AppsV1().DaemonSets("halts").Update(ctx, cur, metav1.UpdateOptions{FieldManager: "flux", DryRun: dryRun})
	}
	update := func(image string) (*appsv1.DaemonSet, error) { return updateAs(image, nil) }
	v2, err := update("agent:v2")
	if err != nil || hold.Held(v2) != hold.HeldUpdate {
		t.Fatalf("v2: %v, %s", err, describe(v2))
	}
	halted := v2.Spec.Template
	const reason = "wave 1: 200 agents would need 62 seats against a budget of 59"
	rolledBack := asBulkhead(func(d *appsv1.DaemonSet) {
		d.Spec.Template.Spec.Containers[0].Image = "agent:v1"
		release(d)
	})
	record, err := hold.HaltedRecord(rolledBack, halted, reason)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lab.Client.CoreV1().PodTemplates("halts").Create(ctx, record, metav1.CreateOptions{FieldManager: hold.FieldManager}); err != nil {
		t.Fatalf("record the halted template: %v", err)
	}
	rv := stableResourceVersion(t, ctx, "halts", "agent")

	// GitOps re-applies v2, again and again: refused with the reason, nothing written. (The
	// API server sees the record once its informer has it: wait with dry runs.)
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := updateAs("agent:v2", []string{metav1.DryRunAll})
		return err != nil, nil
	})
	if err != nil {
		t.Fatalf("admission never refused the halted template")
	}
	for range 3 {
		_, err := update("agent:v2")
		if !apierrors.IsForbidden(err) || !contains(err.Error(), reason, "halts/"+record.Name, "not rolled out again") {
			t.Fatalf("re-applying the halted template: %v; want Forbidden with the reason and the record's name", err)
		}
	}
	now := settled(t, ctx, "halts", "agent")
	if now.ResourceVersion != rv || now.Spec.Template.Spec.Containers[0].Image != "agent:v1" || hold.Held(now) != "" {
		t.Fatalf("the refused updates changed the DaemonSet: resourceVersion %s → %s, %s", rv, now.ResourceVersion, describe(now))
	}
	if pods := podsByNode(t, ctx, ds); !reflect.DeepEqual(pods, v1Pods) {
		t.Fatalf("pods changed")
	}
	// A new revision goes through, held.
	v3, err := update("agent:v3")
	if err != nil || hold.Held(v3) != hold.HeldUpdate || v3.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType {
		t.Fatalf("v3: %v, %s", err, describe(v3))
	}
}

// restricted makes an agent's pods pass the "restricted" Pod Security level, which the bulkhead
// namespace enforces (breakglass's manifest).
func restricted(ds *appsv1.DaemonSet) *appsv1.DaemonSet {
	no, yes := false, true
	spec := &ds.Spec.Template.Spec
	spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: &yes, SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	for i := range spec.Containers {
		spec.Containers[i].SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: &no,
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
	}
	return ds
}
