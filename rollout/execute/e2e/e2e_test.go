// Package e2e drives rollout/execute against the lab's real kube-apiserver and DaemonSet
// controller, with KWOK nodes spread over three zones.
package e2e

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/bulkhead-dev/bulkhead/internal/labtest"
	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/execute"
	"github.com/bulkhead-dev/bulkhead/rollout/plan"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

var lab *labtest.Lab

const nodes = 12

func TestMain(m *testing.M) {
	os.Exit(labtest.Run(m, labtest.Options{Nodes: nodes, PodsPerNode: 1, Services: 2}, &lab))
}

func setup(t *testing.T, ctx context.Context, ns, sa string) {
	t.Helper()
	c := lab.Client
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace: %v", err)
	}
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create service account: %v", err)
	}
}

// podsByNode maps node → pod UID of the DaemonSet's live pods.
func podsByNode(t *testing.T, ctx context.Context, ds *appsv1.DaemonSet) map[string]string {
	t.Helper()
	pods, err := execute.Pods(ctx, lab.Client, ds)
	if err != nil {
		t.Fatalf("pods: %v", err)
	}
	out := map[string]string{}
	for _, p := range pods {
		out[p.Spec.NodeName] = string(p.UID)
	}
	return out
}

// waitAgents waits until the DaemonSet has exactly want pods, all at its current revision and
// Ready, and no others.
func waitAgents(t *testing.T, ctx context.Context, ds *appsv1.DaemonSet, want int) {
	t.Helper()
	var last execute.AgentCounts
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		c, err := execute.CountAgents(ctx, lab.Client, ds)
		if err != nil {
			return false, nil
		}
		last = c
		return c.New == want && c.NewReady == want && c.Old == 0, nil
	})
	if err != nil {
		t.Fatalf("waiting for %d Ready agents at the current revision: last %+v: %v", want, last, err)
	}
}

func eligibleCount(t *testing.T, ctx context.Context, spec corev1.PodSpec) int {
	t.Helper()
	list, err := lab.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list nodes: %v", err)
	}
	return len(plan.Eligible(spec, list.Items))
}

func resolve(t *testing.T, spec string, eligible int) []int {
	t.Helper()
	waves, err := plan.ParseWaves(spec)
	if err != nil {
		t.Fatalf("ParseWaves: %v", err)
	}
	steps, err := plan.Resolve(waves, eligible)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	var targets []int
	for _, s := range steps {
		targets = append(targets, s.Target)
	}
	return targets
}

func lanePresent(t *testing.T, ctx context.Context, lane state.Lane) bool {
	t.Helper()
	_, errFS := lab.Client.FlowcontrolV1().FlowSchemas().Get(ctx, lane.FlowSchema, metav1.GetOptions{})
	_, errPL := lab.Client.FlowcontrolV1().PriorityLevelConfigurations().Get(ctx, lane.PriorityLevel, metav1.GetOptions{})
	if (errFS != nil && !apierrors.IsNotFound(errFS)) || (errPL != nil && !apierrors.IsNotFound(errPL)) {
		t.Fatalf("read lane: %v / %v", errFS, errPL)
	}
	return errFS == nil || errPL == nil
}

func must(t *testing.T) func(state.State, error) state.State {
	return func(s state.State, err error) state.State {
		t.Helper()
		if err != nil {
			t.Fatalf("transition: %v", err)
		}
		return s
	}
}

func TestANewDaemonSetReachesOnlyItsWaveNodesAndFinishesWithoutRestarts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ns, name = "obs-create", "agent"
	setup(t, ctx, ns, name)
	user := labtest.AgentDaemonSet(ns, name, "agent:v1", "")
	st := must(t)(state.New(state.Start{
		ID: "create-1", Kind: state.Create, WavesSpec: "25%,100%",
		Targets: resolve(t, "25%,100%", eligibleCount(t, ctx, user.Spec.Template.Spec)), Eligible: nodes,
		Soak: time.Minute, Budget: check.DefaultBudget, Limits: check.DefaultBudget.Limits(check.Capacity{Seats: 600}),
		Lane: execute.LaneNames(ns, name), NodeLabel: execute.NodeLabelKey(ns, name),
		OriginalStrategy: user.Spec.UpdateStrategy,
	}, time.Now()))
	st = must(t)(st.Decided(analyze.Proceed, state.WaveRecord{}, "", time.Now())) // the servers' baseline, before wave 1
	if !reflect.DeepEqual(st.Targets, []int{3, 12}) {
		t.Fatalf("targets %v, want [3 12]", st.Targets)
	}

	seats, err := execute.EnsureLane(ctx, lab.Client, st.Lane, "daemonset/"+ns+"/"+name, execute.ServiceAccountOf(user), 600, 60)
	if err != nil {
		t.Fatalf("EnsureLane: %v", err)
	}
	if seats < 60 || seats > 61 {
		t.Fatalf("lane has %d seats, want the 60-seat budget", seats)
	}
	if again, err := execute.EnsureLane(ctx, lab.Client, st.Lane, "daemonset/"+ns+"/"+name, execute.ServiceAccountOf(user), 600, 60); err != nil || again != seats {
		t.Fatalf("EnsureLane again: %d seats, %v; want the same lane", again, err)
	}

	ds, err := execute.StartCreate(ctx, lab.Client, user, st)
	if err != nil {
		t.Fatalf("StartCreate: %v", err)
	}
	if err := execute.CheckFree(ds); err == nil || !strings.Contains(err.Error(), "already under rollout create-1") {
		t.Fatalf("a second rollout of the same DaemonSet: %v", err)
	}

	// Wave 1: three nodes, one per zone, and no pod anywhere else.
	done := roll(t, ctx, ds, st)
	if done != 3 {
		t.Fatalf("RollWave: %d done", done)
	}
	if again, err := execute.RollWave(ctx, lab.Client, ds, st, nil); err != nil || again.Done != 3 || !again.Complete || len(again.Switched) != 0 {
		t.Fatalf("RollWave again must switch nothing more: %+v, %v", again, err)
	}
	waitAgents(t, ctx, ds, 3)
	// Once the controller has synced the gated DaemonSet it has decided every pod it will make.
	waitSynced(t, ctx, ds, func(s appsv1.DaemonSetStatus) bool { return s.DesiredNumberScheduled == 3 })
	wave1 := podsByNode(t, ctx, ds)
	if len(wave1) != 3 {
		t.Fatalf("wave 1 has pods on %d nodes, want 3", len(wave1))
	}
	zones := map[string]bool{}
	for node := range wave1 {
		n, err := lab.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get node: %v", err)
		}
		if n.Labels[st.NodeLabel] != "1" {
			t.Fatalf("pod on node %s which wave 1 did not admit (labels %v)", node, n.Labels)
		}
		zones[n.Labels[plan.ZoneLabel]] = true
	}
	if len(zones) != 3 {
		t.Fatalf("wave 1 covers zones %v, want all three", zones)
	}

	prev := st
	st = must(t)(st.WaveRolled(done, time.Now()))
	st = must(t)(st.Decided(analyze.Proceed, state.WaveRecord{New: 3}, "", time.Now()))
	if ds, err = execute.SaveState(ctx, lab.Client, ds, prev, st); err != nil {
		t.Fatalf("SaveState: %v", err)
	}
	saved := st
	if _, err := execute.SaveState(ctx, lab.Client, ds, prev, st); err == nil || !strings.Contains(err.Error(), "the rollout state changed under us") {
		t.Fatalf("a second save from the same stale state must fail: %v", err)
	}
	if done = roll(t, ctx, ds, st); done != nodes {
		t.Fatalf("RollWave 2: %d done", done)
	}
	waitAgents(t, ctx, ds, nodes)
	before := podsByNode(t, ctx, ds)
	for node, uid := range wave1 {
		if before[node] != uid {
			t.Fatalf("wave 2 restarted wave 1's pod on %s", node)
		}
	}

	st = must(t)(st.WaveRolled(done, time.Now()))
	st = must(t)(st.Decided(analyze.Proceed, state.WaveRecord{New: nodes}, "", time.Now()))
	if st.Phase != state.Finishing {
		t.Fatalf("phase %s, want Finishing", st.Phase)
	}
	for i := range 2 { // Finish is idempotent
		if err := execute.Finish(ctx, lab.Client, ds, st); err != nil {
			t.Fatalf("Finish (run %d): %v", i+1, err)
		}
	}
	// The last write restores the update strategy with the final state.
	if _, err := execute.End(ctx, lab.Client, ds, saved, must(t)(st.Finished(time.Now()))); err != nil {
		t.Fatalf("End: %v", err)
	}
	waitAgents(t, ctx, ds, nodes)
	// A RollingUpdate restart would begin in the controller's sync of the restored DaemonSet.
	waitSynced(t, ctx, ds, func(s appsv1.DaemonSetStatus) bool { return s.UpdatedNumberScheduled == nodes })
	after := podsByNode(t, ctx, ds)
	if !reflect.DeepEqual(after, before) {
		t.Fatalf("finishing restarted pods:\nbefore %v\nafter  %v", before, after)
	}
	final, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get DaemonSet: %v", err)
	}
	if final.Spec.Template.Spec.Affinity != nil {
		t.Fatalf("the gate is still in the template: %+v", final.Spec.Template.Spec.Affinity)
	}
	if final.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType || final.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable.IntValue() != 1 {
		t.Fatalf("update strategy not restored: %+v", final.Spec.UpdateStrategy)
	}
	if final.Status.UpdatedNumberScheduled != nodes {
		t.Fatalf("the controller sees %d of %d pods as up to date", final.Status.UpdatedNumberScheduled, nodes)
	}
	labelled, err := lab.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: st.NodeLabel})
	if err != nil || len(labelled.Items) != 0 {
		t.Fatalf("nodes still labelled: %d, %v", len(labelled.Items), err)
	}
	if lanePresent(t, ctx, st.Lane) {
		t.Fatalf("the lane outlived the rollout")
	}
}

func TestAnUpdateHaltedInWaveOneRollsBackOnlyTheWaveNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ns, name = "obs-update", "agent"
	setup(t, ctx, ns, name)
	original := labtest.AgentDaemonSet(ns, name, "agent:v1", "")
	ds, err := lab.Client.AppsV1().DaemonSets(ns).Create(ctx, original, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create DaemonSet: %v", err)
	}
	waitAgents(t, ctx, ds, nodes)
	ds, originalHash, err := execute.CurrentRevision(ctx, lab.Client, ns, name)
	if err != nil {
		t.Fatalf("CurrentRevision: %v", err)
	}
	untouched := podsByNode(t, ctx, ds)

	newTemplate := *ds.Spec.Template.DeepCopy()
	newTemplate.Spec.Containers[0].Image = "agent:v2-bad"
	st := must(t)(state.New(state.Start{
		ID: "update-1", Kind: state.Update, WavesSpec: "25%,100%", Targets: []int{3, 12}, Eligible: nodes,
		Soak: time.Minute, Budget: check.DefaultBudget, Limits: check.DefaultBudget.Limits(check.Capacity{Seats: 600}),
		Lane: execute.LaneNames(ns, name), OriginalStrategy: ds.Spec.UpdateStrategy, OriginalHash: originalHash,
	}, time.Now()))
	if _, err := execute.EnsureLane(ctx, lab.Client, st.Lane, "daemonset/"+ns+"/"+name, execute.ServiceAccountOf(ds), 600, 60); err != nil {
		t.Fatalf("EnsureLane: %v", err)
	}
	if ds, err = execute.StartUpdate(ctx, lab.Client, ds, newTemplate, st); err != nil {
		t.Fatalf("StartUpdate: %v", err)
	}
	saved := st
	// OnDelete: the controller's sync of the new template restarts nothing.
	waitSynced(t, ctx, ds, func(s appsv1.DaemonSetStatus) bool { return s.UpdatedNumberScheduled == 0 })
	if got := podsByNode(t, ctx, ds); !reflect.DeepEqual(got, untouched) {
		t.Fatalf("starting the update restarted pods")
	}

	st = must(t)(st.Decided(analyze.Proceed, state.WaveRecord{Old: nodes}, "", time.Now())) // baseline
	done := roll(t, ctx, ds, st)
	if done != 3 {
		t.Fatalf("RollWave: %d done", done)
	}
	var counts execute.AgentCounts
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		counts, err = execute.CountAgents(ctx, lab.Client, ds)
		return err == nil && counts.New == 3 && counts.NewReady == 3 && counts.Old == nodes-3, nil
	})
	if err != nil {
		t.Fatalf("wave 1: %+v: %v", counts, err)
	}
	during := podsByNode(t, ctx, ds)
	var waveNodes []string
	for node, uid := range untouched {
		if during[node] != uid {
			waveNodes = append(waveNodes, node)
		}
	}
	sort.Strings(waveNodes)
	if len(waveNodes) != 3 {
		t.Fatalf("wave 1 replaced pods on %v, want 3 nodes", waveNodes)
	}

	st = must(t)(st.WaveRolled(done, time.Now()))
	st = must(t)(st.Decided(analyze.Halt, state.WaveRecord{}, "test: the new version is bad", time.Now()))
	for i := range 2 { // Rollback is idempotent
		if err := execute.Rollback(ctx, lab.Client, ds, st, nil); err != nil {
			t.Fatalf("Rollback (run %d): %v", i+1, err)
		}
	}
	// The last write restores the update strategy with the final state.
	if _, err := execute.End(ctx, lab.Client, ds, saved, must(t)(st.RolledBackAt(time.Now()))); err != nil {
		t.Fatalf("End: %v", err)
	}
	ds, current, err := execute.CurrentRevision(ctx, lab.Client, ns, name)
	if err != nil {
		t.Fatalf("CurrentRevision: %v", err)
	}
	if current != originalHash {
		t.Fatalf("after rollback the current revision is %s, want the original %s", current, originalHash)
	}
	waitAgents(t, ctx, ds, nodes)
	after := podsByNode(t, ctx, ds)
	for node, uid := range untouched {
		inWave := sort.SearchStrings(waveNodes, node) < len(waveNodes) && waveNodes[sort.SearchStrings(waveNodes, node)] == node
		if inWave && (after[node] == uid || after[node] == during[node]) {
			t.Fatalf("wave node %s was not given back an old-version pod", node)
		}
		if !inWave && after[node] != uid {
			t.Fatalf("node %s outside wave 1 had its pod restarted", node)
		}
	}
	if ds.Spec.Template.Spec.Containers[0].Image != "agent:v1" {
		t.Fatalf("template image %s, want agent:v1", ds.Spec.Template.Spec.Containers[0].Image)
	}
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
		t.Fatalf("strategy not restored: %+v", ds.Spec.UpdateStrategy)
	}
	if lanePresent(t, ctx, st.Lane) {
		t.Fatalf("the lane outlived the rollback")
	}
	fmt.Fprintf(os.Stderr, "rollback replaced %v\n", waveNodes)
}

// A wave larger than the burst budget allows starts its agents in batches, each batch Ready
// and settled before the next.
func TestAWaveStartsItsAgentsInBatchesSizedByTheBurst(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ns, name = "obs-batch", "agent"
	setup(t, ctx, ns, name)
	user := labtest.AgentDaemonSet(ns, name, "agent:v1", "")
	st := must(t)(state.New(state.Start{
		ID: "batch-1", Kind: state.Create, WavesSpec: "2,8,100%", Targets: []int{2, 8, 12}, Eligible: nodes,
		Soak: time.Minute, Budget: check.DefaultBudget, Limits: check.DefaultBudget.Limits(check.Capacity{Seats: 600}),
		Lane: execute.LaneNames(ns, name), NodeLabel: execute.NodeLabelKey(ns, name), OriginalStrategy: user.Spec.UpdateStrategy,
	}, time.Now()))
	st = must(t)(st.Decided(analyze.Proceed, state.WaveRecord{}, "", time.Now())) // the servers' baseline, before wave 1
	ds, err := execute.StartCreate(ctx, lab.Client, user, st)
	if err != nil {
		t.Fatalf("StartCreate: %v", err)
	}
	if done := roll(t, ctx, ds, st); done != 2 {
		t.Fatalf("RollWave 1: %d done", done)
	}
	st = must(t)(st.WaveRolled(2, time.Now()))
	// Wave 1 measured a start-up burst that allows 3 agents at once.
	st = must(t)(st.Decided(analyze.Proceed, state.WaveRecord{New: 2, MaxNextWave: 3}, "", time.Now()))
	// Wave 2 takes 6 nodes: a batch of 3, then — only once those agents are Ready and have
	// settled — the other 3, which the soak watches.
	var batches [][]string
	var secondAt time.Time
	for {
		p, err := execute.RollWave(ctx, lab.Client, ds, st, nil)
		if err != nil {
			t.Fatalf("RollWave 2: %v", err)
		}
		if len(p.Switched) > 0 {
			batches = append(batches, p.Switched)
			secondAt = time.Now()
		}
		if p.Complete {
			if p.Done != 8 {
				t.Fatalf("wave 2 complete with %d nodes, want 8", p.Done)
			}
			break
		}
		time.Sleep(p.Wait)
	}
	if len(batches) != 2 || len(batches[0]) != 3 || len(batches[1]) != 3 {
		t.Fatalf("wave 2 switched %v, want two batches of 3", batches)
	}
	// When the second batch started, every agent of the first had been Ready for the settle.
	on := podsOn(t, ctx, ds)
	for _, node := range batches[0] {
		readyAt, ok := readySince(on[node])
		if !ok || secondAt.Sub(readyAt) < 15*time.Second {
			t.Fatalf("the second batch began %v after the first batch's agent on %s was Ready (ready: %v); want the 15 s settle first", secondAt.Sub(readyAt), node, ok)
		}
	}
	waitAgents(t, ctx, ds, 8)
	if err := execute.Rollback(ctx, lab.Client, ds, st, nil); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
}

// waitSynced waits until the DaemonSet controller has synced the DaemonSet's latest generation
// and its status satisfies ok: whatever that sync would do to the pods it has begun.
func waitSynced(t *testing.T, ctx context.Context, ds *appsv1.DaemonSet, ok func(appsv1.DaemonSetStatus) bool) {
	t.Helper()
	var last appsv1.DaemonSetStatus
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		cur, err := lab.Client.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = cur.Status
		return cur.Status.ObservedGeneration >= cur.Generation && ok(cur.Status), nil
	})
	if err != nil {
		t.Fatalf("DaemonSet %s/%s not synced: status %+v: %v", ds.Namespace, ds.Name, last, err)
	}
}

// roll steps the current wave until its nodes are switched, waiting as RollWave asks, and
// returns how many nodes run the new pods.
func roll(t *testing.T, ctx context.Context, ds *appsv1.DaemonSet, st state.State) int {
	t.Helper()
	for {
		p, err := execute.RollWave(ctx, lab.Client, ds, st, nil)
		if err != nil {
			t.Fatalf("RollWave: %v", err)
		}
		if p.Complete {
			return p.Done
		}
		time.Sleep(p.Wait)
	}
}

// podsOn is the DaemonSet's pods by node.
func podsOn(t *testing.T, ctx context.Context, ds *appsv1.DaemonSet) map[string]*corev1.Pod {
	t.Helper()
	pods, err := execute.Pods(ctx, lab.Client, ds)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*corev1.Pod{}
	for i := range pods {
		out[pods[i].Spec.NodeName] = &pods[i]
	}
	return out
}

func readySince(p *corev1.Pod) (time.Time, bool) {
	if p == nil {
		return time.Time{}, false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time, true
		}
	}
	return time.Time{}, false
}
