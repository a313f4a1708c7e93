package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	miekgdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulkhead-dev/bulkhead/internal/labtest"
)

// bulkhead dns, run as an operator would, watches through the load balancer of a lab with three
// apiservers. Stopping the replica its watch is connected to must not fail one lookup (UDP or
// TCP, one attempt each), and the watch must carry on through another replica: a Service
// created after the stop is answered.
func TestWatchSurvivesTheLossOfItsAPIServerReplica(t *testing.T) {
	ha := labtest.New(t, labtest.Options{Nodes: 5, PodsPerNode: 4, Services: 10, APIServers: 3})
	ctx := context.Background()
	addr := freeAddr(t)
	logPath := filepath.Join(t.TempDir(), "dns.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	dns := exec.Command(labtest.Bulkhead(t), "--kubeconfig", ha.Kubeconfig, "dns", "--listen", addr, "--metrics", "",
		"--snapshot", filepath.Join(t.TempDir(), "dns.snapshot"))
	dns.Stdout, dns.Stderr = logFile, logFile
	if err := dns.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = dns.Process.Kill()
		_ = dns.Wait()
		if t.Failed() {
			t.Logf("bulkhead dns log:\n%s", readTail(logPath))
		}
	}()
	if err := waitAnswering(addr, "svc-000.lab.svc.cluster.local."); err != nil {
		t.Fatal(err)
	}
	want := agreedAddresses(t, ha, addr)
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	slices.Sort(names)

	// One attempt per lookup: no answer may fail, not even a first try.
	drill := startDrill(addr, names, want, func(addr, network, name string) (*miekgdns.Msg, error) {
		return exchange(addr, network, name, miekgdns.TypeA)
	})
	defer drill.stop()

	used, err := ha.ReplicasUsedBy(ctx, dns.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(used) != 1 {
		t.Fatalf("bulkhead dns reaches replicas %v through the balancer, want exactly one connection's", used)
	}
	watched := used[0]
	time.Sleep(time.Second)
	if err := ha.StopReplica(ctx, watched); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	t.Logf("%s stopped replica %d, the one bulkhead dns watched through", stoppedAt.Format("15:04:05.000"), watched)

	// The watch reconnects through the balancer, to another replica.
	for {
		now, err := ha.ReplicasUsedBy(ctx, dns.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if len(now) > 0 && !slices.Contains(now, watched) {
			t.Logf("bulkhead dns reconnected to replica(s) %v %v after the stop", now, time.Since(stoppedAt).Round(time.Millisecond))
			break
		}
		if time.Since(stoppedAt) > time.Minute {
			t.Fatalf("bulkhead dns has no connection to another replica a minute after its replica %d stopped (now %v)", watched, now)
		}
		time.Sleep(100 * time.Millisecond)
	}
	svc, err := ha.Client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-after-replica-loss"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	took := pollUntil(t, addr, "e2e-after-replica-loss.default.svc.cluster.local.", svc.Spec.ClusterIP, 30*time.Second)
	t.Logf("a Service created after the replica's loss was answered %v after its creation", took)
	// Keep asking for a few seconds more with the replica still down, then bring it back.
	time.Sleep(3 * time.Second)
	if err := ha.StartReplica(ctx, watched); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	drill.stop()
	t.Logf("%d lookups of %d names over UDP and TCP through the stop of replica %d; %d failed", drill.queries.Load(), len(names), watched, drill.failures.Load())
	drill.check(t)
}

func readTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(b[max(0, len(b)-4000):])
}
