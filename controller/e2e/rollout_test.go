package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/bulkhead-dev/bulkhead/apf"
	"github.com/bulkhead-dev/bulkhead/controller/api/v1alpha1"
	"github.com/bulkhead-dev/bulkhead/controller/hold"
	"github.com/bulkhead-dev/bulkhead/internal/labtest"
	"github.com/bulkhead-dev/bulkhead/rollout"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/execute"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// Behaviours of the lab's emulated agents: a well-behaved one watches its own node's pods;
// the seed's LISTs every pod of the cluster, often (cost per agent ∝ cluster size: at this
// lab's size the default budget's 25% of the API server's CPU is passed by 12 of them, and 3
// show it).
const (
	watchAgent = "- watch: pods\n  fieldSelector: spec.nodeName=$(NODE_NAME)\n"
	seedAgent  = "- list: pods\n  every: 100ms\n"
)

// observed follows one DaemonSet from outside while the controller rolls it out: every rollout
// state its annotation held and every pod UID that ever ran on each node.
type observed struct {
	mu     sync.Mutex
	ids    []string
	states []state.State
	podsOn map[string]map[string]bool
	stop   context.CancelFunc
}

func follow(t testing.TB, ns, name string) *observed {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	o := &observed{podsOn: map[string]map[string]bool{}, stop: cancel}
	t.Cleanup(cancel)
	dsFactory := informers.NewSharedInformerFactoryWithOptions(lab.Client, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
		}))
	podFactory := informers.NewSharedInformerFactoryWithOptions(lab.Client, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.LabelSelector = "app=" + name }))
	onDS := func(obj any) {
		ds, ok := obj.(*appsv1.DaemonSet)
		if !ok {
			return
		}
		st, found, err := state.Decode(ds.Annotations)
		if err != nil || !found {
			return
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		if !slices.Contains(o.ids, st.ID) {
			o.ids = append(o.ids, st.ID)
		}
		o.states = append(o.states, st)
	}
	onPod := func(obj any) {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Spec.NodeName == "" {
			return
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.podsOn[p.Spec.NodeName] == nil {
			o.podsOn[p.Spec.NodeName] = map[string]bool{}
		}
		o.podsOn[p.Spec.NodeName][string(p.UID)] = true
	}
	if _, err := dsFactory.Apps().V1().DaemonSets().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: onDS, UpdateFunc: func(_, n any) { onDS(n) }}); err != nil {
		t.Fatal(err)
	}
	if _, err := podFactory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: onPod, UpdateFunc: func(_, n any) { onPod(n) }}); err != nil {
		t.Fatal(err)
	}
	dsFactory.Start(ctx.Done())
	podFactory.Start(ctx.Done())
	dsFactory.WaitForCacheSync(ctx.Done())
	podFactory.WaitForCacheSync(ctx.Done())
	return o
}

// nodesEver is how many nodes ever ran a pod of the DaemonSet.
func (o *observed) nodesEver() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.podsOn)
}

// replaced lists the nodes on which more than one pod of the DaemonSet ever ran.
func (o *observed) replaced() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for node, uids := range o.podsOn {
		if len(uids) > 1 {
			out = append(out, node)
		}
	}
	return out
}

func (o *observed) rollouts() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.ids)
}

// rolloutOf reads the DaemonSet's rollout state.
func rolloutOf(t testing.TB, ctx context.Context, ns, name string) (*appsv1.DaemonSet, state.State) {
	t.Helper()
	ds, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get DaemonSet %s/%s: %v", ns, name, err)
	}
	st, _, err := state.Decode(ds.Annotations)
	if err != nil {
		t.Fatalf("DaemonSet %s/%s: %v", ns, name, err)
	}
	return ds, st
}

// waitRollout waits until the DaemonSet's rollout state satisfies ok.
func waitRollout(t testing.TB, ctx context.Context, ns, name string, timeout time.Duration, what string, ok func(state.State) bool) state.State {
	t.Helper()
	var st state.State
	eventually(t, timeout, what, func() (bool, string) {
		_, st = rolloutOf(t, ctx, ns, name)
		return ok(st), fmt.Sprintf("rollout %s %s wave %d done %d: %s", st.ID, st.Phase, st.Wave, st.Done, st.Reason)
	})
	return st
}

// probeP99 runs an ordinary client's GET 10 times a second until stop is called, and then
// returns its p99 and the requests that failed or never came back within a second.
func probeP99(t testing.TB, ctx context.Context) (stop func() (time.Duration, int)) {
	t.Helper()
	const ns = "probe"
	if err := lab.ServiceAccount(ctx, ns, "probe", "view"); err != nil {
		t.Fatal(err)
	}
	_, err := lab.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "target"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	p, err := labtest.NewAPIProbe(lab.Config, ns, "probe", "target")
	if err != nil {
		t.Fatal(err)
	}
	probeCtx, cancel := context.WithCancel(ctx)
	go p.Run(probeCtx, 10)
	return func() (time.Duration, int) {
		latencies, failed, stuck := p.Take(time.Second)
		cancel()
		slices.Sort(latencies)
		if len(latencies) == 0 {
			t.Fatal("the probe measured nothing")
		}
		return time.Duration(latencies[len(latencies)*99/100] * float64(time.Second)), failed + stuck
	}
}

// reapplier re-applies a manifest every 5 s, as a GitOps tool does: a whole-object replace with
// what git says, bulkhead's annotations and guards dropped.
func reapplier(t testing.TB, ctx context.Context, manifest *appsv1.DaemonSet) (stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan int)
	go func() {
		n := 0
		defer func() { done <- n }()
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Second):
			}
			cur, err := lab.Client.AppsV1().DaemonSets(manifest.Namespace).Get(ctx, manifest.Name, metav1.GetOptions{})
			if err != nil {
				continue
			}
			again := manifest.DeepCopy()
			again.ResourceVersion = cur.ResourceVersion
			if _, err := lab.Client.AppsV1().DaemonSets(manifest.Namespace).Update(ctx, again, metav1.UpdateOptions{FieldManager: "argocd-controller"}); err == nil {
				n++
			} else if !apierrors.IsConflict(err) && ctx.Err() == nil {
				t.Errorf("re-apply: %v", err)
			}
		}
	}()
	return func() int {
		cancel()
		return <-done
	}
}

// kubectlGet is `kubectl get rolloutstatuses -n ns` as kubectl prints it: the API server's
// Table (its printer columns), rendered.
func kubectlGet(t testing.TB, ctx context.Context, ns string) string {
	t.Helper()
	raw, err := lab.Client.CoreV1().RESTClient().Get().AbsPath("/apis", v1alpha1.GroupVersion.Group, v1alpha1.GroupVersion.Version, "namespaces", ns, "rolloutstatuses").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
	if err != nil {
		t.Fatalf("get rolloutstatuses as a table: %v", err)
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatalf("decode the table: %v", err)
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 3, 0, 3, ' ', 0)
	var cols []string
	for _, c := range table.ColumnDefinitions {
		if c.Priority == 0 {
			cols = append(cols, strings.ToUpper(c.Name))
		}
	}
	fmt.Fprintln(w, strings.Join(cols, "\t"))
	for _, r := range table.Rows {
		var cells []string
		for i, c := range r.Cells {
			if table.ColumnDefinitions[i].Priority == 0 {
				cells = append(cells, fmt.Sprint(c))
			}
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	}
	w.Flush()
	t.Logf("kubectl get rolloutstatuses -n %s\n%s", ns, b.String())
	return b.String()
}

// seenByController waits until the controller has written the policy's status: its caches hold
// the policy (observe policies hold nothing, so admission cannot tell).
func seenByController(t testing.TB, ctx context.Context, policy string) {
	t.Helper()
	eventually(t, 30*time.Second, "the controller saw policy "+policy, func() (bool, string) {
		u, err := dyn(t).Resource(v1alpha1.Resource).Get(ctx, policy, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		seen, _, _ := unstructuredInt(u.Object, "status", "observedGeneration")
		return seen >= u.GetGeneration(), fmt.Sprint(u.Object["status"])
	})
}

// rolloutStatus reads the DaemonSet's RolloutStatus.
func rolloutStatus(t testing.TB, ctx context.Context, ns, name string) map[string]any {
	t.Helper()
	u, err := dyn(t).Resource(v1alpha1.RolloutStatusResource).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	s, _ := u.Object["status"].(map[string]any)
	return s
}

// The seed's agent, applied with plain client calls and re-applied every 5 s by a GitOps tool,
// is halted by the CPU budget after wave 1 and never reaches more than wave 1's nodes; an
// ordinary client's GETs stay fast; the new DaemonSet is kept, held, and the re-applies start
// no second rollout. Then, under an observe policy, the same agent reaches every node and the
// halt guard would have made is recorded.
func TestTheSeedsAgentIsHaltedAfterWaveOneThroughReappliesAndObserveRecordsTheHalt(t *testing.T) {
	ctx := context.Background()
	install(t, ctx)
	const ns, name = "seed", "telemetry"
	if err := lab.ServiceAccount(ctx, ns, name, "view"); err != nil {
		t.Fatal(err)
	}
	createPolicy(t, ctx, "seed", map[string]any{"namespaces": []any{ns}, "waves": []any{"25%", "100%"}, "soak": "10s"}, ns)
	leader := startReplica(t, labtest.Bulkhead(t), controllerKubeconfig(t, ctx), "seed-controller")

	manifest := labtest.AgentDaemonSet(ns, name, "agent:v1", seedAgent)
	o := follow(t, ns, name)
	probe := probeP99(t, ctx)
	before, err := lab.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lab.Client.AppsV1().DaemonSets(ns).Create(ctx, manifest.DeepCopy(), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		_ = lab.Client.AppsV1().DaemonSets(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	stopReapplying := reapplier(t, ctx, manifest)
	st := waitRollout(t, ctx, ns, name, 4*time.Minute, "the seed's agent rolled back", func(s state.State) bool { return s.Phase == state.RolledBack })
	// GitOps keeps re-applying the halted manifest: nothing may start again.
	time.Sleep(20 * time.Second)
	reapplies := stopReapplying()
	p99, failed := probe()
	t.Logf("halted: %s (%d re-applies; ordinary GET p99 %v)", st.Halted.Headline, reapplies, p99)
	// Wave 1's LISTs were served (not refused by RBAC): the halt measured real load.
	lab.RequireAgentsServed(ctx, t, before, ns+"/"+name)

	cpu := st.Halted.Resources[check.CPU]
	if st.Halted.Wave != 1 || !strings.Contains(st.Reason, "cpu: ") || cpu.Predicted == nil || cpu.Predicted.Mean <= st.Limits[check.CPU].Value {
		t.Fatalf("the halt must be wave 1's and the CPU budget's, with the prediction over it: wave %d, reason %q, CPU %+v against %+v",
			st.Halted.Wave, st.Reason, cpu.Predicted, st.Limits[check.CPU])
	}
	if ids := o.rollouts(); len(ids) != 1 || reapplies < 6 {
		t.Fatalf("rollouts %v through %d re-applies: want exactly one", ids, reapplies)
	}
	if n := o.nodesEver(); n == 0 || n > st.Targets[0] {
		t.Fatalf("%d nodes ever ran the agent; wave 1 is %d", n, st.Targets[0])
	}
	if p99 >= time.Second || failed > 0 {
		t.Fatalf("an ordinary GET's p99 was %v (%d failed or stuck); want under the 1 s SLO", p99, failed)
	}
	ds := settled(t, ctx, ns, name)
	if hold.Held(ds) != hold.HeldCreate || !execute.Gated(ds.Spec.Template.Spec, st.NodeLabel) || ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType ||
		ds.Status.DesiredNumberScheduled != 0 || len(podsByNode(t, ctx, ds)) != 0 {
		t.Fatalf("the halted new DaemonSet must stay, held, gated and without pods: %s, %d desired", describe(ds), ds.Status.DesiredNumberScheduled)
	}
	eventually(t, 30*time.Second, "a RolloutStatus shows the halt", func() (bool, string) {
		s := rolloutStatus(t, ctx, ns, name)
		return s["phase"] == "RolledBack" && s["wave"] == "1/2" && s["resource"] == "cpu", fmt.Sprint(s)
	})
	if table := kubectlGet(t, ctx, ns); !contains(table, "PHASE", "WAVE", "NODES", "PREDICTED", "BUDGET", "RolledBack", "cpu") {
		t.Fatalf("kubectl get rolloutstatuses shows:\n%s", table)
	}
	if m := leader.scrape(t); m["bulkhead_controller_decisions_total"]["reason=budget,verdict=halt"] < 1 {
		t.Errorf("decisions: %v; want the halt counted by its kind", m["bulkhead_controller_decisions_total"])
	}

	// Observe: the same agent, never held, reaches every node; the halt guard would have
	// made is recorded with its prediction.
	const observe = "observe"
	if err := lab.ServiceAccount(ctx, observe, name, "view"); err != nil {
		t.Fatal(err)
	}
	createPolicy(t, ctx, "observe", map[string]any{"namespaces": []any{observe}, "mode": "observe", "soak": "10s"}, "")
	seenByController(t, ctx, "observe")
	if _, err := lab.Client.AppsV1().DaemonSets(observe).Create(ctx, labtest.AgentDaemonSet(observe, name, "agent:v1", seedAgent), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		_ = lab.Client.AppsV1().DaemonSets(observe).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	st = waitRollout(t, ctx, observe, name, 4*time.Minute, "the observed rollout complete", func(s state.State) bool { return s.Phase == state.Complete })
	if st.WouldHalt == nil || st.WouldHalt.Resources[check.CPU].Predicted == nil || st.Reason == "" || !st.Observing() {
		t.Fatalf("observe must record the halt guard would have made, with its prediction: %+v, reason %q", st.WouldHalt, st.Reason)
	}
	t.Logf("observe: %s", st.WouldHalt.Headline)
	eventually(t, 30*time.Second, "a RolloutStatus of the observed rollout", func() (bool, string) {
		s := rolloutStatus(t, ctx, observe, name)
		return s["phase"] == "Complete" && s["mode"] == "observe", fmt.Sprint(s)
	})
	kubectlGet(t, ctx, observe)
	live := settled(t, ctx, observe, name)
	if int(live.Status.UpdatedNumberScheduled) != nodes || hold.Held(live) != "" || live.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
		t.Fatalf("observe must hold nothing: %d of %d nodes, %s", live.Status.UpdatedNumberScheduled, nodes, describe(live))
	}
	if !st.Lane.Shared || st.Lane.PriorityLevel != "workload-low" {
		t.Fatalf("the observed agents must be measured in their own level: lane %+v", st.Lane)
	}
	if _, err := lab.Client.FlowcontrolV1().FlowSchemas().Get(ctx, st.Lane.FlowSchema, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the observe lane outlived the rollout: %v", err)
	}
	events, err := lab.Client.CoreV1().Events(observe).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name + ",reason=WouldHalt"})
	if err != nil || len(events.Items) == 0 {
		t.Fatalf("no WouldHalt Event: %v", err)
	}
	noForbidden(t, leader)
}

func noForbidden(t testing.TB, replicas ...*replica) {
	t.Helper()
	for _, r := range replicas {
		if log := r.out.String(); strings.Contains(strings.ToLower(log), "forbidden") {
			t.Errorf("replica %s was refused something by RBAC:\n%s", r.id, log)
		}
	}
}

// A watch-based agent applied with a plain client call is rolled out by two controller
// replicas, the leader killed with SIGKILL in the middle of wave 2: the standby goes on without
// repeating or skipping a wave or switching any node twice, and the agent reaches every node.
// Its standing compartment then contains it when its running pods turn into the seed's agent
// without a new template. Finally a new template is held, adopted and aborted: rolled back,
// and its template refused when re-applied.
func TestAWatchAgentRollsOutThroughAFailoverAndItsCompartmentHoldsItWhenItTurnsBad(t *testing.T) {
	ctx := context.Background()
	install(t, ctx)
	const ns, name = "waves", "agent"
	if err := lab.ServiceAccount(ctx, ns, name, "view"); err != nil {
		t.Fatal(err)
	}
	createPolicy(t, ctx, "waves", map[string]any{"namespaces": []any{ns}, "waves": []any{"25%", "50%", "100%"}, "soak": "10s", "compartments": true}, ns)
	kubeconfig, bin := controllerKubeconfig(t, ctx), labtest.Bulkhead(t)
	replicas := map[string]*replica{}
	for _, id := range []string{"replica-a", "replica-b"} {
		replicas[id] = startReplica(t, bin, kubeconfig, id)
	}
	var leader, standby *replica
	eventually(t, 30*time.Second, "a replica holds the Lease", func() (bool, string) {
		leader = replicas[leaseHolder(ctx)]
		return leader != nil, leaseHolder(ctx)
	})
	for id, r := range replicas {
		if id != leader.id {
			standby = r
		}
	}

	manifest := labtest.AgentDaemonSet(ns, name, "agent:v1", watchAgent)
	o := follow(t, ns, name)
	if _, err := lab.Client.AppsV1().DaemonSets(ns).Create(ctx, manifest.DeepCopy(), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		_ = lab.Client.AppsV1().DaemonSets(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	midWave2 := waitRollout(t, ctx, ns, name, 3*time.Minute, "wave 2 under way", func(s state.State) bool {
		return s.Wave == 2 && (s.Phase == state.Rolling || s.Phase == state.Soaking)
	})
	if err := leader.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s in wave 2 (%s, %d nodes done)", leader.id, midWave2.Phase, midWave2.Done)
	st := waitRollout(t, ctx, ns, name, 4*time.Minute, "the rollout complete under the standby", func(s state.State) bool {
		return s.Phase == state.Complete || s.Terminal()
	})
	if st.Phase != state.Complete {
		t.Fatalf("phase %s (%s), want Complete", st.Phase, st.Reason)
	}
	var waves []int
	for _, r := range st.History {
		waves = append(waves, r.Wave)
		if r.Wave > 0 && r.New != st.Targets[r.Wave-1] {
			t.Errorf("wave %d measured %d agents, want its %d", r.Wave, r.New, st.Targets[r.Wave-1])
		}
	}
	if !slices.Equal(waves, []int{0, 1, 2, 3}) || len(o.rollouts()) != 1 {
		t.Fatalf("waves recorded %v over rollouts %v; want the baseline and waves 1, 2, 3 once each, one rollout", waves, o.rollouts())
	}
	if again := o.replaced(); len(again) > 0 || o.nodesEver() != nodes {
		t.Fatalf("%d nodes ran the agent, these more than one pod: %v", o.nodesEver(), again)
	}
	if midWave2.Phase == state.Soaking && !strings.Contains(standby.out.String(), "soaking again from now") {
		t.Errorf("the standby took over a soak without saying it soaks again:\n%s", standby.out.String())
	}
	live := settled(t, ctx, ns, name)
	if hold.Held(live) != "" || live.Annotations[hold.RequestedStrategyAnnotation] != "" || live.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType ||
		live.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable.IntValue() != 1 || live.Spec.Template.Spec.Affinity != nil || int(live.Status.UpdatedNumberScheduled) != nodes {
		t.Fatalf("a completed rollout gives back the user's DaemonSet, released: %s, %d updated", describe(live), live.Status.UpdatedNumberScheduled)
	}
	eventually(t, 30*time.Second, "a RolloutStatus shows it complete", func() (bool, string) {
		s := rolloutStatus(t, ctx, ns, name)
		return s["phase"] == "Complete" && s["wave"] == "3/3" && s["nodes"] == fmt.Sprintf("%d/%d", nodes, nodes), fmt.Sprint(s)
	})
	kubectlGet(t, ctx, ns)

	// The compartment, and the agents turning into the seed's without a new template (a
	// ConfigMap change would do that): only they queue.
	compartment := apf.CompartmentName(ns, name)
	eventually(t, 30*time.Second, "the compartment", func() (bool, string) {
		_, err := lab.Client.FlowcontrolV1().FlowSchemas().Get(ctx, compartment, metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	if err := lab.Behave(ctx, ns, name, seedAgent); err != nil {
		t.Fatal(err)
	}
	before := flowTotals(t, ctx, compartment)
	probe := probeP99(t, ctx)
	time.Sleep(30 * time.Second)
	p99, failed := probe()
	after := flowTotals(t, ctx, compartment)
	if err := lab.Behave(ctx, ns, name, watchAgent); err != nil {
		t.Fatal(err)
	}
	dispatched, waits := after.dispatched-before.dispatched, after.waits-before.waits
	meanWait := time.Duration((after.waitSeconds - before.waitSeconds) / max(waits, 1) * float64(time.Second))
	t.Logf("turned bad in its compartment: %.0f requests dispatched, %.0f rejected, mean queue wait %v; ordinary GET p99 %v",
		dispatched, after.rejected-before.rejected, meanWait, p99)
	if dispatched < 100 || (meanWait < 50*time.Millisecond && after.rejected == before.rejected) {
		t.Fatalf("the agents' requests must go through their compartment and queue there")
	}
	if p99 >= time.Second || failed > 0 {
		t.Fatalf("an ordinary GET's p99 was %v (%d failed or stuck); want under the 1 s SLO", p99, failed)
	}

	// A new template: held, adopted, aborted in wave 1, rolled back, recorded, refused.
	update := func(image string) (*appsv1.DaemonSet, error) {
		cur, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		cur.Spec.Template.Spec.Containers[0].Image = image
		return lab.Client.AppsV1().DaemonSets(ns).Update(ctx, cur, metav1.UpdateOptions{FieldManager: "flux"})
	}
	if v2, err := update("agent:v2"); err != nil || hold.Held(v2) != hold.HeldUpdate {
		t.Fatalf("v2: %v", err)
	}
	v2 := waitRollout(t, ctx, ns, name, 2*time.Minute, "v2 in wave 1", func(s state.State) bool {
		return s.ID != st.ID && s.Wave == 1 && s.Phase == state.Soaking
	})
	if v2.Kind != state.Update || !v2.Held {
		t.Fatalf("v2's rollout: %s, held %v", v2.Kind, v2.Held)
	}
	if _, err := rollout.Abort(ctx, lab.Client, ns, name); err != nil {
		t.Fatalf("abort: %v", err)
	}
	waitRollout(t, ctx, ns, name, 2*time.Minute, "v2 rolled back", func(s state.State) bool { return s.Phase == state.RolledBack })
	live = settled(t, ctx, ns, name)
	if live.Spec.Template.Spec.Containers[0].Image != "agent:v1" || hold.Held(live) != "" || live.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
		t.Fatalf("rolled back: %s, image %s", describe(live), live.Spec.Template.Spec.Containers[0].Image)
	}
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := update("agent:v2")
		return apierrors.IsForbidden(err) && contains(err.Error(), "aborted by user", "not rolled out again"), nil
	})
	if err != nil {
		t.Fatalf("re-applying the aborted template was not refused with its reason")
	}
	noForbidden(t, standby)
}

// flow is one flow schema's APF counters, summed over their series.
type flow struct{ dispatched, rejected, waits, waitSeconds float64 }

// flowTotals reads a flow schema's counters from the lab's API server (parsed with expfmt).
func flowTotals(t testing.TB, ctx context.Context, flowSchema string) flow {
	t.Helper()
	raw, err := lab.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		t.Fatalf("scrape /metrics: %v", err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	var f flow
	for family, add := range map[string]func(*dto.Metric){
		"apiserver_flowcontrol_dispatched_requests_total": func(m *dto.Metric) { f.dispatched += m.GetCounter().GetValue() },
		"apiserver_flowcontrol_rejected_requests_total":   func(m *dto.Metric) { f.rejected += m.GetCounter().GetValue() },
		"apiserver_flowcontrol_request_wait_duration_seconds": func(m *dto.Metric) {
			f.waits += float64(m.GetHistogram().GetSampleCount())
			f.waitSeconds += m.GetHistogram().GetSampleSum()
		},
	} {
		for _, m := range families[family].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "flow_schema" && l.GetValue() == flowSchema {
					add(m)
				}
			}
		}
	}
	return f
}
