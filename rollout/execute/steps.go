package execute

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/bulkhead-dev/bulkhead/rollout/plan"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// RollWave switches nodes until the current wave's target is reached and returns how many
// nodes are switched. Progress is read from the cluster every time — a node label (new
// DaemonSet) or a pod at the current revision (update) — so running it again, after a crash
// half-way or after it finished, switches exactly the nodes still missing.
func RollWave(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, st state.State) (int, error) {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, fmt.Errorf("list nodes for wave %d: %w", st.Wave, err)
	}
	switch st.Kind {
	case state.Create:
		return rollCreateWave(ctx, client, ds, st, nodes.Items)
	default:
		return rollUpdateWave(ctx, client, ds, st, nodes.Items)
	}
}

func rollCreateWave(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, st state.State, nodes []corev1.Node) (int, error) {
	eligible := plan.Eligible(Ungate(ds.Spec.Template.Spec, st.NodeLabel), nodes)
	done := map[string]bool{}
	for _, n := range eligible {
		if _, ok := n.Labels[st.NodeLabel]; ok {
			done[n.Name] = true
		}
	}
	wave := plan.NextWave(plan.Order(planNodes(eligible), Identity(ds.Namespace, ds.Name), []string{plan.ZoneLabel}), done, st.Target())
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{st.NodeLabel: strconv.Itoa(st.Wave)}}})
	if err != nil {
		return 0, fmt.Errorf("encode node label: %w", err)
	}
	err = inBatches(ctx, client, ds, wave, st.Batch(), func(name string) error {
		if _, err := client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager}); err != nil {
			return fmt.Errorf("wave %d: label node %s: %w", st.Wave, name, ignoreNotFound(err))
		}
		done[name] = true
		return nil
	})
	return len(done), err
}

// batchSettle is how long a batch's agents get after becoming Ready before the next batch
// starts: their first LIST and informer sync, the burst the batch size was chosen for.
const batchSettle = 15 * time.Second

// inBatches switches nodes batch nodes at a time (all at once when batch is 0), waiting after
// each batch until the DaemonSet's pods on the switched nodes are at its current revision and
// Ready and have settled, so the start-up bursts of two batches do not add up.
func inBatches(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, nodes []string, batch int, switchNode func(string) error) error {
	if batch <= 0 || batch >= len(nodes) {
		batch = len(nodes)
	}
	for start := 0; start < len(nodes); start += batch {
		part := nodes[start:min(start+batch, len(nodes))]
		for _, name := range part {
			if err := switchNode(name); err != nil {
				return err
			}
		}
		if start+batch >= len(nodes) {
			return nil // the soak watches the last batch
		}
		if err := waitReadyOn(ctx, client, ds, part); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(batchSettle):
		}
	}
	return nil
}

// waitReadyOn waits until each node has a Ready pod of the DaemonSet's current revision.
func waitReadyOn(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, nodes []string) error {
	want := map[string]bool{}
	for _, n := range nodes {
		want[n] = true
	}
	var missing int
	err := wait.PollUntilContextTimeout(ctx, time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		cur, current, err := CurrentRevision(ctx, client, ds.Namespace, ds.Name)
		if err != nil {
			return false, err
		}
		pods, err := Pods(ctx, client, cur)
		if err != nil {
			return false, err
		}
		ready := 0
		for i := range pods {
			p := &pods[i]
			if want[p.Spec.NodeName] && podRevision(p) == current && podReady(p) {
				ready++
			}
		}
		missing = len(want) - ready
		return missing == 0, nil
	})
	if err != nil {
		return fmt.Errorf("wait for a batch of %d agents to be Ready (%d not yet): %w", len(nodes), missing, err)
	}
	return nil
}

func rollUpdateWave(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, st state.State, nodes []corev1.Node) (int, error) {
	ds, current, err := CurrentRevision(ctx, client, ds.Namespace, ds.Name)
	if err != nil {
		return 0, err
	}
	pods, err := Pods(ctx, client, ds)
	if err != nil {
		return 0, err
	}
	podOn := map[string]*corev1.Pod{}
	for i := range pods {
		podOn[pods[i].Spec.NodeName] = &pods[i]
	}
	eligible := plan.Eligible(ds.Spec.Template.Spec, nodes)
	done := map[string]bool{}
	for _, n := range eligible {
		// A node without a pod gets one from the current template: it is switched already.
		if p := podOn[n.Name]; p == nil || podRevision(p) == current {
			done[n.Name] = true
		}
	}
	wave := plan.NextWave(plan.Order(planNodes(eligible), Identity(ds.Namespace, ds.Name), []string{plan.ZoneLabel}), done, st.Target())
	err = inBatches(ctx, client, ds, wave, st.Batch(), func(name string) error {
		if err := deletePod(ctx, client, podOn[name]); err != nil {
			return fmt.Errorf("wave %d: %w", st.Wave, err)
		}
		done[name] = true
		return nil
	})
	return len(done), err
}

// Finish ends a successful rollout: the user's template (new DaemonSet) and update strategy
// are restored without restarting any pod, node labels and the lane are removed.
func Finish(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, st state.State) error {
	if st.Kind == state.Create {
		if err := updateDaemonSet(ctx, client, ds, func(d *appsv1.DaemonSet) bool {
			if !Gated(d.Spec.Template.Spec, st.NodeLabel) {
				return false
			}
			d.Spec.Template.Spec = Ungate(d.Spec.Template.Spec, st.NodeLabel)
			return true
		}); err != nil {
			return fmt.Errorf("restore the template: %w", err)
		}
		if err := relabelToCurrentRevision(ctx, client, ds); err != nil {
			return err
		}
	} else if err := requireAllAtCurrentRevision(ctx, client, ds); err != nil {
		return err
	}
	if err := restoreStrategy(ctx, client, ds, st.OriginalStrategy); err != nil {
		return err
	}
	if st.Kind == state.Create {
		if err := removeNodeLabels(ctx, client, st.NodeLabel); err != nil {
			return err
		}
	}
	return DeleteLane(ctx, client, st.Lane)
}

// Rollback undoes a rollout, fastest relief first: the lane is squeezed so the agents' load
// stops at once. A new DaemonSet then loses its nodes (its pods go), its lane, and finally
// itself; an update gets its previous template back, only the pods at another revision are
// replaced, then the strategy is restored and the lane removed.
func Rollback(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, st state.State) error {
	owner := "daemonset/" + ds.Namespace + "/" + ds.Name
	if err := SqueezeLane(ctx, client, st.Lane, owner); err != nil {
		return err
	}
	if st.Kind == state.Create {
		// Un-admit every node first: the controller deletes the pods, and the DaemonSet with
		// its state stays until they are gone, so a crash here leaves something to resume.
		if err := removeNodeLabels(ctx, client, st.NodeLabel); err != nil {
			return err
		}
		if err := waitNoPods(ctx, client, ds); err != nil {
			return err
		}
		if err := DeleteLane(ctx, client, st.Lane); err != nil {
			return err
		}
		propagation := metav1.DeletePropagationBackground
		err := client.AppsV1().DaemonSets(ds.Namespace).Delete(ctx, ds.Name, metav1.DeleteOptions{
			PropagationPolicy: &propagation, Preconditions: &metav1.Preconditions{UID: &ds.UID}})
		if ignoreNotFound(err) != nil {
			return fmt.Errorf("delete DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
		}
		return nil
	}
	ds, current, err := CurrentRevision(ctx, client, ds.Namespace, ds.Name)
	if err != nil {
		return err
	}
	if current != st.OriginalHash {
		rev, err := revisionByHash(ctx, client, ds, st.OriginalHash)
		if err != nil {
			return err
		}
		// The revision's data is a strategic merge patch that replaces the template, as
		// kubectl rollout undo applies it.
		if _, err := client.AppsV1().DaemonSets(ds.Namespace).Patch(ctx, ds.Name, types.StrategicMergePatchType, rev.Data.Raw, metav1.PatchOptions{FieldManager: fieldManager}); err != nil {
			return fmt.Errorf("restore template of revision %s: %w", st.OriginalHash, err)
		}
		if ds, current, err = CurrentRevision(ctx, client, ds.Namespace, ds.Name); err != nil {
			return err
		}
	}
	pods, err := Pods(ctx, client, ds)
	if err != nil {
		return err
	}
	for i := range pods {
		if podRevision(&pods[i]) != current {
			if err := deletePod(ctx, client, &pods[i]); err != nil {
				return err
			}
		}
	}
	if err := restoreStrategy(ctx, client, ds, st.OriginalStrategy); err != nil {
		return err
	}
	return DeleteLane(ctx, client, st.Lane)
}

func waitNoPods(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet) error {
	var left int
	err := wait.PollUntilContextTimeout(ctx, pollInterval, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := Pods(ctx, client, ds)
		if err != nil {
			return false, err
		}
		left = len(pods)
		return left == 0, nil
	})
	if err != nil {
		return fmt.Errorf("wait for the pods of %s/%s to go (%d left): %w", ds.Namespace, ds.Name, left, err)
	}
	return nil
}

// relabelToCurrentRevision gives every pod the current revision's hash. Pods made from the
// gated template are identical to pods made from the user's (the controller replaces a daemon
// pod's required node affinity with a node-name term), so they are up to date in truth; the
// DaemonSet controller relabels pods the same way when it deduplicates revisions.
func relabelToCurrentRevision(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet) error {
	ds, current, err := CurrentRevision(ctx, client, ds.Namespace, ds.Name)
	if err != nil {
		return err
	}
	pods, err := Pods(ctx, client, ds)
	if err != nil {
		return err
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{appsv1.DefaultDaemonSetUniqueLabelKey: current}}})
	if err != nil {
		return fmt.Errorf("encode revision label: %w", err)
	}
	for _, p := range pods {
		if podRevision(&p) == current {
			continue
		}
		if _, err := client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager}); ignoreNotFound(err) != nil {
			return fmt.Errorf("relabel pod %s to revision %s: %w", p.Name, current, err)
		}
	}
	return nil
}

func requireAllAtCurrentRevision(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet) error {
	ds, current, err := CurrentRevision(ctx, client, ds.Namespace, ds.Name)
	if err != nil {
		return err
	}
	pods, err := Pods(ctx, client, ds)
	if err != nil {
		return err
	}
	var old []string
	for _, p := range pods {
		if podRevision(&p) != current {
			old = append(old, p.Spec.NodeName)
		}
	}
	if len(old) > 0 {
		return fmt.Errorf("%d pods still run an older revision (nodes %v); restoring the update strategy now would restart them", len(old), old)
	}
	return nil
}

func restoreStrategy(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, strategy appsv1.DaemonSetUpdateStrategy) error {
	err := updateDaemonSet(ctx, client, ds, func(d *appsv1.DaemonSet) bool {
		if strategy.Type == "" || reflect.DeepEqual(d.Spec.UpdateStrategy, strategy) {
			return false
		}
		d.Spec.UpdateStrategy = strategy
		return true
	})
	if err != nil {
		return fmt.Errorf("restore the update strategy: %w", err)
	}
	return nil
}

// updateDaemonSet re-reads the DaemonSet and applies change until the update lands without a
// conflict; change returns false when there is nothing to do.
func updateDaemonSet(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, change func(*appsv1.DaemonSet) bool) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := client.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !change(cur) {
			return nil
		}
		_, err = client.AppsV1().DaemonSets(ds.Namespace).Update(ctx, cur, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
}

func removeNodeLabels(ctx context.Context, client kubernetes.Interface, key string) error {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: key})
	if err != nil {
		return fmt.Errorf("list nodes labelled %s: %w", key, err)
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{key: nil}}})
	if err != nil {
		return fmt.Errorf("encode label removal: %w", err)
	}
	for _, n := range nodes.Items {
		if _, err := client.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager}); ignoreNotFound(err) != nil {
			return fmt.Errorf("remove label %s from node %s: %w", key, n.Name, err)
		}
	}
	return nil
}

func deletePod(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod) error {
	if pod == nil {
		return nil
	}
	err := client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}})
	// Gone, or replaced by a pod of another UID (the UID precondition fails with a conflict):
	// either way this node's old pod is no more.
	if ignoreNotFound(err) != nil && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete pod %s on node %s: %w", pod.Name, pod.Spec.NodeName, err)
	}
	return nil
}

func planNodes(nodes []corev1.Node) []plan.Node {
	out := make([]plan.Node, len(nodes))
	for i, n := range nodes {
		out[i] = plan.Node{Name: n.Name, Labels: n.Labels}
	}
	return out
}
