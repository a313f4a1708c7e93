package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/bulkhead-dev/bulkhead/apf"
	"github.com/bulkhead-dev/bulkhead/breakglass"
	"github.com/bulkhead-dev/bulkhead/controller/api/v1alpha1"
	"github.com/bulkhead-dev/bulkhead/controller/hold"
	"github.com/bulkhead-dev/bulkhead/internal/labtest"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/predict"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// replica is one `bulkhead controller` process.
type replica struct {
	id, metrics, health string
	cmd                 *exec.Cmd
	out                 *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// controllerKubeconfig is a kubeconfig of the controller's own service account, as its pod
// would have: the test runs the controller as a process with exactly its RBAC.
func controllerKubeconfig(t testing.TB, ctx context.Context) string {
	t.Helper()
	seconds := int64(3600)
	tok, err := lab.Client.CoreV1().ServiceAccounts(hold.ControllerNamespace).CreateToken(ctx, hold.ControllerServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &seconds}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for the controller's service account: %v", err)
	}
	cfg, err := breakglass.Kubeconfig(lab.Config, tok.Status.Token)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "controller.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func startReplica(t testing.TB, bin, kubeconfig, id string) *replica {
	t.Helper()
	r := &replica{id: id, metrics: freeAddr(t), health: freeAddr(t), out: &lockedBuffer{}}
	r.cmd = exec.Command(bin, "controller", "--kubeconfig", kubeconfig, "--id", id,
		"--metrics-bind-address", r.metrics, "--health-bind-address", r.health, "--housekeeping", "2s")
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	t.Cleanup(func() {
		// SIGTERM first: a replica that stops releases the Lease, so the next test's controller
		// leads at once instead of 15 s later.
		exited := make(chan struct{})
		go func() { _, _ = r.cmd.Process.Wait(); close(exited) }()
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = r.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("replica %s said:\n%s", id, r.out.String())
		}
	})
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		resp, err := http.Get("http://" + r.health + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("replica %s never ready: %v\n%s", id, err, r.out.String())
	}
	return r
}

// scrape reads a replica's /metrics with expfmt: family → label string → value.
func (r *replica) scrape(t testing.TB) map[string]map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + r.metrics + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", r.id, err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s's metrics: %v", r.id, err)
	}
	out := map[string]map[string]float64{}
	for name, f := range families {
		out[name] = map[string]float64{}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[name][strings.Join(labels, ",")] = v
		}
	}
	return out
}

func leaseHolder(ctx context.Context) string {
	l, err := lab.Client.CoordinationV1().Leases(hold.ControllerNamespace).Get(ctx, "bulkhead-controller", metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		ok, now := cond()
		last = now
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: not within %v (last: %s)", what, timeout, last)
	}
}

// completedRollout is the state a finished rollout leaves: 6 agents measured at 1.8 seats
// steady, on one API server of 600 seats.
func completedRollout(t testing.TB) map[string]string {
	t.Helper()
	st, err := state.New(state.Start{ID: "done-1", Kind: state.Create, WavesSpec: "1,100%", Targets: []int{1, nodes}, Eligible: nodes,
		Soak: time.Minute, Budget: check.DefaultBudget, Limits: check.DefaultBudget.Limits(check.Capacity{Seats: 600}),
		Lane: state.Lane{FlowSchema: "bulkhead-rollout-ctl.done", PriorityLevel: "bulkhead-rollout-ctl.done"}, NodeLabel: "rollout.bulkhead.dev/gate-0"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	st.Phase = state.Complete
	seats := func(mean, se float64, predicted *check.Interval95) map[check.Resource]check.Measured {
		return map[check.Resource]check.Measured{check.Seats: {Steady: predict.Estimate{Mean: mean, SE: se, Samples: 5}, Predicted: predicted}}
	}
	st.History = []state.WaveRecord{{Wave: 1, New: 1, Resources: seats(0.3, 0.01, nil)},
		{Wave: 2, New: nodes, Resources: seats(1.8, 0.1, &check.Interval95{Mean: 1.8, Low: 1.6, High: 2})}}
	ann, err := state.Encode(st)
	if err != nil {
		t.Fatal(err)
	}
	return ann
}

func TestTheControllerRunsAsItsServiceAccountAndAStandbyTakesOver(t *testing.T) {
	ctx := context.Background()
	install(t, ctx)
	createPolicy(t, ctx, "ctl", map[string]any{"namespaces": []any{"ctl"}, "compartments": true, "waves": []any{"100%"}, "soak": "5s"}, "ctl")
	held := agent("ctl", "held", "agent:v1")
	if _, err := lab.Client.AppsV1().DaemonSets("ctl").Create(ctx, held, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}
	done := agent("ctl", "done", "agent:v1")
	done.Annotations = completedRollout(t)
	if _, err := lab.Client.AppsV1().DaemonSets("ctl").Create(ctx, done, metav1.CreateOptions{FieldManager: hold.FieldManager}); err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		for _, name := range []string{"held", "done"} {
			_ = lab.Client.AppsV1().DaemonSets("ctl").Delete(context.Background(), name, metav1.DeleteOptions{})
		}
	})

	kubeconfig := controllerKubeconfig(t, ctx)
	bin := labtest.Bulkhead(t)
	replicas := map[string]*replica{}
	for _, id := range []string{"replica-a", "replica-b"} {
		replicas[id] = startReplica(t, bin, kubeconfig, id)
	}
	var leader *replica
	eventually(t, 30*time.Second, "a replica holds the Lease", func() (bool, string) {
		leader = replicas[leaseHolder(ctx)]
		return leader != nil, leaseHolder(ctx)
	})
	var standby *replica
	for id, r := range replicas {
		if id != leader.id {
			standby = r
		}
	}

	// The leader acts with the service account's RBAC: the policy's status, the held
	// DaemonSet adopted (an Event), the compartment of the completed one.
	eventually(t, 30*time.Second, "policy status written", func() (bool, string) {
		u, err := dyn(t).Resource(v1alpha1.Resource).Get(ctx, "ctl", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		guarded, _, _ := unstructuredInt(u.Object, "status", "guarded")
		rolling, _, _ := unstructuredInt(u.Object, "status", "rolling")
		return guarded == 2 && rolling <= 1, fmt.Sprintf("%v", u.Object["status"])
	})
	eventually(t, 30*time.Second, "an Event on the held DaemonSet", func() (bool, string) {
		events, err := lab.Client.CoreV1().Events("ctl").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=held,reason=Adopted"})
		if err != nil || len(events.Items) == 0 {
			return false, fmt.Sprint(err)
		}
		return events.Items[0].Source.Component == "bulkhead-controller", events.Items[0].Message
	})
	compartment := apf.CompartmentName("ctl", "done")
	eventually(t, 30*time.Second, "a compartment for the completed DaemonSet", func() (bool, string) {
		pl, err := lab.Client.FlowcontrolV1().PriorityLevelConfigurations().Get(ctx, compartment, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		fs, err := lab.Client.FlowcontrolV1().FlowSchemas().Get(ctx, compartment, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		sa := fs.Spec.Rules[0].Subjects[0].ServiceAccount
		// 1.8 seats steady on one API server, twice that as headroom: 4 seats.
		return pl.Annotations[apf.SeatsAnnotation] == "4" && sa.Namespace == "ctl" && sa.Name == "agent" &&
				fs.Spec.MatchingPrecedence == apf.PrecedenceCompartment,
			fmt.Sprintf("seats %q, subject %+v", pl.Annotations[apf.SeatsAnnotation], sa)
	})
	m := leader.scrape(t)
	for family, want := range map[string]map[string]float64{
		"bulkhead_controller_leader":                 {"": 1},
		"bulkhead_controller_compartment_seats":      {"daemonset=done,namespace=ctl": 4},
		"bulkhead_controller_budget":                 {"daemonset=done,namespace=ctl,resource=seats": 60},
		"bulkhead_controller_predicted_fleet_demand": {"daemonset=done,namespace=ctl,resource=seats": 1.8},
	} {
		for labels, v := range want {
			if got, ok := m[family][labels]; !ok || got != v {
				t.Errorf("%s{%s} = %v (present %v), want %v", family, labels, got, ok, v)
			}
		}
	}
	var counted float64
	for _, n := range m["bulkhead_controller_rollouts"] {
		counted += n
	}
	if counted < 2 || m["bulkhead_controller_rollouts"]["phase=Complete"] < 1 {
		t.Errorf("rollouts by phase: %v; want the held (or adopted) and the completed DaemonSets counted", m["bulkhead_controller_rollouts"])
	}
	if s := standby.scrape(t); s["bulkhead_controller_leader"][""] != 0 {
		t.Errorf("the standby says it leads")
	}

	// The DaemonSet goes: its compartment goes with it.
	if err := lab.Client.AppsV1().DaemonSets("ctl").Delete(ctx, "done", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the compartment of a deleted DaemonSet removed", func() (bool, string) {
		_, errPL := lab.Client.FlowcontrolV1().PriorityLevelConfigurations().Get(ctx, compartment, metav1.GetOptions{})
		_, errFS := lab.Client.FlowcontrolV1().FlowSchemas().Get(ctx, compartment, metav1.GetOptions{})
		return apierrors.IsNotFound(errPL) && apierrors.IsNotFound(errFS), fmt.Sprintf("%v / %v", errPL, errFS)
	})

	// kill -9 of the leader: the standby takes the Lease once it expires (15 s) and acts.
	if err := leader.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	eventually(t, 45*time.Second, "the standby leads", func() (bool, string) {
		return leaseHolder(ctx) == standby.id && standby.scrape(t)["bulkhead_controller_leader"][""] == 1, leaseHolder(ctx)
	})
	t.Logf("the standby led %v after the leader's kill -9", time.Since(killed).Round(time.Second))
	for _, r := range replicas {
		if log := r.out.String(); strings.Contains(strings.ToLower(log), "forbidden") {
			t.Errorf("replica %s was refused something by RBAC:\n%s", r.id, log)
		}
	}
}

func unstructuredInt(obj map[string]any, fields ...string) (int64, bool, error) {
	var cur any = obj
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return 0, false, nil
		}
		cur = m[f]
	}
	switch v := cur.(type) {
	case int64:
		return v, true, nil
	case float64:
		return int64(v), true, nil
	}
	return 0, false, nil
}
