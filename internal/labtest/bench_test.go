package labtest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BenchmarkAgentRequestRate measures how closely emulated agents keep their schedule: 10 agents
// each GET a ConfigMap once a second for 30 s; it prints the rate the emulator made, the rate APF
// dispatched under the agents' flow schema, and the GET latency the emulator saw. A loaded box
// makes the agents late (timers fire late), so the rate is printed here, not asserted in a test.
func BenchmarkAgentRequestRate(b *testing.B) {
	ctx := context.Background()
	const replicas, sa, window = 10, "agent", 30 * time.Second
	for i := 0; i < b.N; i++ {
		ns := createNamespace(b, fmt.Sprintf("bench-rate-%d", i))
		flow := "labtest-bench-rate-" + fmt.Sprint(i)
		grantGetConfigMaps(b, ns, sa)
		createFlowSchema(b, flow, ns, sa)
		if _, err := lab.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "target"}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		runAgents(b, ns, sa, replicas, fmt.Sprintf("- get: configmaps/%s/target\n  every: 1s\n", ns))
		time.Sleep(2 * time.Second) // every agent is past its random start phase

		before, err := lab.Stats(ctx)
		if err != nil {
			b.Fatal(err)
		}
		apfBefore, from := dispatched(b, flow), time.Now()
		time.Sleep(window)
		after := lab.RequireAgentsSucceeded(ctx, b, before, ns+"/"+sa)
		apfAfter, took := dispatched(b, flow), time.Since(from)
		stopAgents(b, ns, sa)

		made := after.Agent(ns+"/"+sa).Requests - before.Agent(ns+"/"+sa).Requests
		emulated, apf := float64(made)/took.Seconds(), (apfAfter-apfBefore)/took.Seconds()
		var p50, p99 float64
		for _, a := range after {
			if a.ServiceAccount == ns+"/"+sa {
				p50, p99 = a.P50, a.P99
			}
		}
		fmt.Printf("\n%d agents, GET every 1s (±10%% jitter), %s window\n", replicas, took.Round(time.Millisecond))
		fmt.Printf("%-24s %10s %12s\n", "", "req/s", "of schedule")
		fmt.Printf("%-24s %10d %11.0f%%\n", "schedule", replicas, 100.0)
		fmt.Printf("%-24s %10.2f %11.1f%%\n", "emulator made", emulated, 100*emulated/replicas)
		fmt.Printf("%-24s %10.2f %11.1f%%\n", "APF dispatched", apf, 100*apf/replicas)
		fmt.Printf("GET latency seen by the emulator: p50 %.1f ms, p99 %.1f ms\n", p50*1000, p99*1000)
		b.ReportMetric(emulated, "emulated-req/s")
		b.ReportMetric(apf, "dispatched-req/s")
	}
}
