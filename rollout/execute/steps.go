package execute

import (
	"context"
	"encoding/json"
	"fmt"
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

// Progress is what one call of RollWave did for the current wave.
type Progress struct {
	// Done is how many nodes run the new pods; Complete says the wave's target is reached.
	Done     int
	Complete bool
	// Switched are the nodes this call switched; Wait is how long until the wave's next batch
	// may start (its last batch's agents must be Ready and settled).
	Switched []string
	Wait     time.Duration
}

// RollWave does one bounded piece of the current wave: when the batch switched last has its
// agents Ready and settled, it switches the next batch of nodes (the whole wave when no batch
// size is known) and returns. Progress is read from the cluster every time — a node label (new
// DaemonSet) or a pod at the current revision (update) — so calling it again, after a crash
// half-way or after the wave finished, switches exactly the nodes still missing and never waits
// on a batch twice. pending, when the caller remembers it, is the batch switched last: while it
// settles only the DaemonSet's own pods are read, so waiting costs no cluster-wide LIST; the
// node list is read once per batch (and once after a restart, to find the batch).
func RollWave(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, st state.State, pending []string) (Progress, error) {
	ds, current, err := CurrentRevision(ctx, client, ds.Namespace, ds.Name)
	if err != nil {
		return Progress{}, err
	}
	pods, err := Pods(ctx, client, ds)
	if err != nil {
		return Progress{}, err
	}
	podOn := map[string]*corev1.Pod{}
	for i := range pods {
		podOn[pods[i].Spec.NodeName] = &pods[i]
	}
	if wait := settling(pending, podOn, current, time.Now()); wait > 0 {
		return Progress{Wait: wait}, nil
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return Progress{}, fmt.Errorf("list nodes for wave %d: %w", st.Wave, err)
	}
	w := waveNodes{st: st, current: current, podOn: podOn}
	var switchNode func(string) error
	if st.Kind == state.Create {
		w.eligible = plan.Eligible(Ungate(ds.Spec.Template.Spec, st.NodeLabel), nodes.Items)
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{st.NodeLabel: strconv.Itoa(st.Wave)}}})
		if err != nil {
			return Progress{}, fmt.Errorf("encode node label: %w", err)
		}
		switchNode = func(name string) error {
			if _, err := client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager}); err != nil {
				return fmt.Errorf("wave %d: label node %s: %w", st.Wave, name, ignoreNotFound(err))
			}
			return nil
		}
	} else {
		w.eligible = plan.Eligible(ds.Spec.Template.Spec, nodes.Items)
		switchNode = func(name string) error {
			if err := deletePod(ctx, client, podOn[name]); err != nil {
				return fmt.Errorf("wave %d: %w", st.Wave, err)
			}
			return nil
		}
	}
	done, inWave := w.switched()
	p := Progress{Done: len(done)}
	next := plan.NextWave(plan.Order(planNodes(w.eligible), Identity(ds.Namespace, ds.Name), []string{plan.ZoneLabel}), done, st.Target())
	if len(next) == 0 {
		p.Complete = true
		return p, nil
	}
	if len(pending) == 0 {
		if wait := settling(inWave, podOn, current, time.Now()); wait > 0 {
			p.Wait = wait
			return p, nil
		}
	}
	batch := st.Batch()
	if batch <= 0 || batch > len(next) {
		batch = len(next)
	}
	for _, name := range next[:batch] {
		if err := switchNode(name); err != nil {
			return p, err
		}
		p.Switched = append(p.Switched, name)
		p.Done++
	}
	// The last batch is watched by the soak; an earlier one is waited on by the next call.
	p.Complete = batch == len(next)
	if !p.Complete {
		p.Wait = time.Second
	}
	return p, nil
}

// waveNodes reads which eligible nodes are switched.
type waveNodes struct {
	st       state.State
	current  string
	podOn    map[string]*corev1.Pod
	eligible []corev1.Node
}

// switched returns every switched node, and the ones switched in the current wave.
func (w waveNodes) switched() (done map[string]bool, inWave []string) {
	done = map[string]bool{}
	waveStart := w.st.WaveStarted.Truncate(time.Second) // creation timestamps have 1 s resolution
	for _, n := range w.eligible {
		p := w.podOn[n.Name]
		if w.st.Kind == state.Create {
			if v, ok := n.Labels[w.st.NodeLabel]; ok {
				done[n.Name] = true
				if v == strconv.Itoa(w.st.Wave) {
					inWave = append(inWave, n.Name)
				}
			}
			continue
		}
		// A node without a pod gets one from the current template: it is switched already.
		if p == nil || podRevision(p) == w.current {
			done[n.Name] = true
			if p != nil && !p.CreationTimestamp.Time.Before(waveStart) {
				inWave = append(inWave, n.Name)
			}
		}
	}
	return done, inWave
}

// batchSettle is how long a batch's agents get after becoming Ready before the next batch
// starts: their first LIST and informer sync, the burst the batch size was chosen for.
const batchSettle = 15 * time.Second

// settling is how long until the agents on nodes are all Ready at the current revision and
// settled; 0 when they are (or there are none).
func settling(nodes []string, podOn map[string]*corev1.Pod, current string, now time.Time) time.Duration {
	var wait time.Duration
	for _, n := range nodes {
		p := podOn[n]
		if p == nil || podRevision(p) != current {
			return time.Second // the DaemonSet controller has not made the pod yet
		}
		readySince, ok := readySince(p)
		if !ok {
			return time.Second
		}
		wait = max(wait, readySince.Add(batchSettle).Sub(now))
	}
	return max(wait, 0)
}

// readySince is when the pod last became Ready.
func readySince(p *corev1.Pod) (time.Time, bool) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time, true
		}
	}
	return time.Time{}, false
}

// Finish ends a successful rollout, all but its last write: the user's template (new
// DaemonSet) is restored without restarting any pod, node labels and the lane are removed. The
// update strategy is restored by the write that saves the final state (Write), so a DaemonSet
// is never released while its state still says the rollout is under way. A template that is not
// the one rolled out is refused (ErrSuperseded): finishing would relabel its pods as a revision
// they do not run.
func Finish(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, st state.State) error {
	if st.Observing() {
		return DeleteLane(ctx, client, st.Lane)
	}
	if st.Kind == state.Create {
		if err := updateDaemonSet(ctx, client, ds, func(d *appsv1.DaemonSet) (bool, error) {
			if err := RequireRevision(d, st); err != nil {
				return false, err
			}
			if !Gated(d.Spec.Template.Spec, st.NodeLabel) {
				return false, nil
			}
			d.Spec.Template.Spec = Ungate(d.Spec.Template.Spec, st.NodeLabel)
			return true, nil
		}); err != nil {
			return fmt.Errorf("restore the template: %w", err)
		}
		if err := relabelToCurrentRevision(ctx, client, ds, st); err != nil {
			return err
		}
		if err := removeNodeLabels(ctx, client, st.NodeLabel); err != nil {
			return err
		}
	} else if err := requireAllAtCurrentRevision(ctx, client, ds, st); err != nil {
		return err
	}
	return DeleteLane(ctx, client, st.Lane)
}

// Rollback undoes a rollout, all but its last write, fastest relief first: the lane is squeezed
// so the agents' load stops at once. A new DaemonSet then loses its nodes (its pods go) and its
// lane; the CLI's is deleted last, the controller's (st.Held) is kept, gated off every node,
// for a GitOps tool would only create it again. An update gets its previous template back, only
// the pods at another revision are replaced, and the lane is removed. The update strategy is
// restored by the write that saves the final state (End). squeezed, when not nil, runs once the
// lane is squeezed and before anything else changes (RecordHalted, for one).
func Rollback(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, st state.State, squeezed func(context.Context) error) error {
	owner := "daemonset/" + ds.Namespace + "/" + ds.Name
	if err := SqueezeLane(ctx, client, st.Lane, owner); err != nil {
		return err
	}
	if squeezed != nil {
		if err := squeezed(ctx); err != nil {
			return err
		}
	}
	if st.Kind == state.Create {
		// The template must be gated for un-labelling to remove the pods: a rollback that
		// interrupted a finish finds it ungated already.
		if err := updateDaemonSet(ctx, client, ds, func(d *appsv1.DaemonSet) (bool, error) {
			if Gated(d.Spec.Template.Spec, st.NodeLabel) {
				return false, nil
			}
			d.Spec.Template.Spec = Gate(UserTemplate(d.Spec.Template).Spec, st.NodeLabel)
			d.Spec.UpdateStrategy = onDelete
			return true, nil
		}); err != nil {
			return fmt.Errorf("gate the template again: %w", err)
		}
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
		if st.Held {
			return nil
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
	return DeleteLane(ctx, client, st.Lane)
}

// AwaitDaemonSetController is an observed rollout's wave: the DaemonSet controller rolls the
// DaemonSet by itself, and bulkhead only waits until every pod runs the current revision and
// has been Ready for the settle time, so that the soak after it measures the steady fleet, not
// its start-up. It acts on nothing.
func AwaitDaemonSetController(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet) (Progress, error) {
	ds, current, err := CurrentRevision(ctx, client, ds.Namespace, ds.Name)
	if err != nil {
		return Progress{}, err
	}
	s := ds.Status
	if s.UpdatedNumberScheduled < s.DesiredNumberScheduled || s.NumberReady < s.DesiredNumberScheduled || s.DesiredNumberScheduled == 0 {
		return Progress{Done: int(s.UpdatedNumberScheduled), Wait: time.Second}, nil
	}
	pods, err := Pods(ctx, client, ds)
	if err != nil {
		return Progress{}, err
	}
	podOn := map[string]*corev1.Pod{}
	var nodes []string
	for i := range pods {
		podOn[pods[i].Spec.NodeName] = &pods[i]
		nodes = append(nodes, pods[i].Spec.NodeName)
	}
	p := Progress{Done: len(pods), Wait: settling(nodes, podOn, current, time.Now())}
	p.Complete = p.Wait == 0
	return p, nil
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
func relabelToCurrentRevision(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, st state.State) error {
	ds, current, err := CurrentRevision(ctx, client, ds.Namespace, ds.Name)
	if err != nil {
		return err
	}
	if err := RequireRevision(ds, st); err != nil {
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

func requireAllAtCurrentRevision(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, st state.State) error {
	ds, current, err := CurrentRevision(ctx, client, ds.Namespace, ds.Name)
	if err != nil {
		return err
	}
	if err := RequireRevision(ds, st); err != nil {
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

// updateDaemonSet re-reads the DaemonSet and applies change until the update lands without a
// conflict; change returns false when there is nothing to do, or an error to give up.
func updateDaemonSet(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet, change func(*appsv1.DaemonSet) (bool, error)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := client.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if ok, err := change(cur); err != nil || !ok {
			return err
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
