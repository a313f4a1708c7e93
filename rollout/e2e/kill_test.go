package e2e

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/bulkhead-dev/bulkhead/internal/labtest"
	"github.com/bulkhead-dev/bulkhead/rollout/execute"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// An update whose bulkhead process is killed with SIGKILL in the middle of wave 2 — no signal
// handler runs, nothing is paused or saved — is finished by `rollout resume` in a new process:
// every wave decided once and in order, no node switched twice, every node running exactly one
// pod of the new revision.
func TestAKill9MidWaveThenResumeCompletesTheUpdate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const ns, name = "kill", "agent"
	setup(t, ctx, ns, name)
	bin := labtest.Bulkhead(t)

	// The DaemonSet as it runs before the update: v1 on every node.
	v1, err := execute.ParseManifest([]byte(strings.NewReplacer("NAME", name, "NS", ns, "IMAGE", "agent:v1").Replace(manifest)), ns, true)
	if err != nil {
		t.Fatalf("ParseManifest: %v", err)
	}
	if _, err := lab.Client.AppsV1().DaemonSets(ns).Create(ctx, v1, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create v1: %v", err)
	}
	if err := wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		ds, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && ds.Status.NumberReady == nodes && ds.Status.UpdatedNumberScheduled == nodes, nil
	}); err != nil {
		t.Fatalf("v1 never ran on all %d nodes: %v", nodes, err)
	}

	var firstOut bytes.Buffer
	first := exec.CommandContext(ctx, bin, "--kubeconfig", lab.Kubeconfig, "rollout", "apply", "-f", writeManifest(t, ns, name, "agent:v2"),
		"--waves", "25%,50%,100%", "--soak", "8s", "--interval", "2s")
	first.Stdout, first.Stderr = &firstOut, &firstOut
	if err := first.Start(); err != nil {
		t.Fatalf("start bulkhead: %v", err)
	}
	atKill := killMidWave(t, ctx, first, ns, name, 2)
	err = first.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the first bulkhead was not killed by SIGKILL: %v\n%s", err, firstOut.String())
	}
	t.Logf("killed in wave 2, phase %s, %d nodes switched as recorded; its output:\n%s", atKill.Phase, atKill.Done, firstOut.String())
	// What the dead process left: new-revision pods exist on the nodes it switched.
	_, current, err := execute.CurrentRevision(ctx, lab.Client, ns, name)
	if err != nil {
		t.Fatalf("CurrentRevision: %v", err)
	}
	switchedAtKill := podsAt(t, ctx, ns, name, current)
	oldAtKill := podsAt(t, ctx, ns, name, atKill.OriginalHash)
	t.Logf("at the kill: %d nodes with a new pod, %d with an old one, %d between (wave 1: %d, wave 2's target: %d)",
		len(switchedAtKill), len(oldAtKill), nodes-len(switchedAtKill)-len(oldAtKill), atKill.Targets[0], atKill.Targets[1])
	if len(switchedAtKill) < atKill.Targets[0] {
		t.Fatalf("%d new pods at the kill, want at least wave 1's %d", len(switchedAtKill), atKill.Targets[0])
	}
	// The kill landed inside wave 2: the cluster had more nodes off the old version than the
	// state recorded, which is what resume must count from the cluster and not repeat.
	if touched := nodes - len(oldAtKill); touched <= atKill.Done {
		t.Fatalf("at the kill %d nodes had left the old version and the state recorded %d: the kill did not land inside wave 2", touched, atKill.Done)
	}

	resume := exec.CommandContext(ctx, bin, "--kubeconfig", lab.Kubeconfig, "rollout", "resume", name, "-n", ns, "--interval", "2s")
	out, err := resume.CombinedOutput()
	t.Logf("resume:\n%s", out)
	if err != nil || !strings.Contains(string(out), ns+"/"+name+": Complete") {
		t.Fatalf("resume: %v", err)
	}

	_, final, err := execute.Load(ctx, lab.Client, ns, name)
	if err != nil || final.Phase != state.Complete || final.ID != atKill.ID {
		t.Fatalf("after resume: %v, rollout %s phase %s; want %s Complete", err, final.ID, final.Phase, atKill.ID)
	}
	var decided []int
	for _, r := range final.History {
		decided = append(decided, r.Wave)
	}
	if want := []int{0, 1, 2, 3}; !reflect.DeepEqual(decided, want) {
		t.Fatalf("soaks decided %v, want the baseline and each wave once, in order: %v", decided, want)
	}
	for i, r := range final.History[1:] {
		if r.New != final.Targets[i] {
			t.Fatalf("wave %d measured %d new agents, want its target %d", r.Wave, r.New, final.Targets[i])
		}
	}
	ds, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	pods, err := execute.Pods(ctx, lab.Client, ds)
	if err != nil {
		t.Fatalf("pods: %v", err)
	}
	perNode := map[string]int{}
	for _, p := range pods {
		perNode[p.Spec.NodeName]++
		if p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] != current || !execute.PodReady(&p) {
			t.Fatalf("pod %s on %s: revision %s ready %v; want %s and Ready", p.Name, p.Spec.NodeName,
				p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey], execute.PodReady(&p), current)
		}
	}
	if len(perNode) != nodes {
		t.Fatalf("pods on %d nodes, want all %d", len(perNode), nodes)
	}
	for node, n := range perNode {
		if n != 1 {
			t.Fatalf("node %s runs %d pods of the DaemonSet", node, n)
		}
	}
	// No node was switched twice: the new pods the dead process made are the ones running.
	after := podsAt(t, ctx, ns, name, current)
	for node, uid := range switchedAtKill {
		if after[node] != uid {
			t.Fatalf("node %s: its new pod %s was replaced by %s after the resume", node, uid, after[node])
		}
	}
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType || ds.Spec.Template.Spec.Containers[0].Image != "agent:v2" {
		t.Fatalf("after the rollout: strategy %s image %s", ds.Spec.UpdateStrategy.Type, ds.Spec.Template.Spec.Containers[0].Image)
	}
}

// killMidWave sends SIGKILL to p while it switches the nodes of wave: at the first deletion of
// one of the DaemonSet's pods after the annotation reached that wave (the pods are watched from
// that very write on), so the process has begun the wave's deletions and not recorded them.
// It returns the state the annotation held.
func killMidWave(t *testing.T, ctx context.Context, p *exec.Cmd, ns, name string, wave int) state.State {
	t.Helper()
	fail := func(format string, args ...any) {
		_ = p.Process.Kill()
		t.Fatalf(format, args...)
	}
	dsWatch, err := lab.Client.AppsV1().DaemonSets(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		fail("watch the DaemonSet: %v", err)
	}
	defer dsWatch.Stop()
	var st state.State
	var from string
	for ev := range dsWatch.ResultChan() {
		ds, ok := ev.Object.(*appsv1.DaemonSet)
		if !ok {
			continue
		}
		if s, found, err := state.Decode(ds.Annotations); err == nil && found && s.Wave == wave {
			st, from = s, ds.ResourceVersion
			break
		}
	}
	if from == "" {
		fail("the watch ended before wave %d began", wave)
	}
	// Resource versions are etcd's revisions, one sequence for every kind: this watch sees every
	// pod change after the write that began the wave.
	podWatch, err := lab.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=" + name, ResourceVersion: from})
	if err != nil {
		fail("watch the pods: %v", err)
	}
	defer podWatch.Stop()
	for ev := range podWatch.ResultChan() {
		pod, ok := ev.Object.(*corev1.Pod)
		if !ok {
			continue
		}
		if ev.Type == watch.Deleted || pod.DeletionTimestamp != nil {
			if err := p.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("kill -9: %v", err)
			}
			return st
		}
	}
	fail("no pod of wave %d was deleted", wave)
	return state.State{}
}

// podsAt maps node → UID of the DaemonSet's pods at revision hash that are bound to a node (a
// pod the controller just created waits for the scheduler).
func podsAt(t *testing.T, ctx context.Context, ns, name, hash string) map[string]string {
	t.Helper()
	ds, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	pods, err := execute.Pods(ctx, lab.Client, ds)
	if err != nil {
		t.Fatalf("pods: %v", err)
	}
	out := map[string]string{}
	for _, p := range pods {
		if p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == hash && p.Spec.NodeName != "" {
			out[p.Spec.NodeName] = string(p.UID)
		}
	}
	return out
}
