package e2e

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/bulkhead-dev/bulkhead/breakglass"
)

// BenchmarkOperatorUnderSaturation measures, while the acceptance culprit saturates the lab, the
// GET latency of an operator through the break-glass lane as installed (Limited, lendablePercent
// 0), through the same lane made Exempt, as an ordinary user (global-default) and as an ordinary
// service account (workload-low, the culprit's own level); then the time from `bulkhead shed` to
// the ordinary service account's p99 being back under 1 s. It prints numbers and asserts nothing.
func BenchmarkOperatorUnderSaturation(b *testing.B) {
	const window = 30 * time.Second
	for i := 0; i < b.N; i++ {
		mustRun(b, "install")
		createServiceAccount(b, "ordinary", "client", "view")
		createServiceAccount(b, "culprit", "telemetry", "view")
		user := rest.CopyConfig(lab.Config)
		user.Impersonate = rest.ImpersonationConfig{UserName: "bob", Groups: []string{"system:authenticated"}}
		user.QPS, user.Burst = 1000, 1000
		mustBindNodesReader(b, "bob")

		idle, err := lab.Stats(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		startCulprit(b, "culprit", "telemetry", culpritPods)
		time.Sleep(10 * time.Second)
		// A culprit whose LISTs are never served (a 403 without RBAC) loads the server with nothing;
		// once it saturates workload-low, APF rejects its excess (429).
		lab.RequireAgentsServed(context.Background(), b, idle, "culprit/telemetry")

		measure := func(name string, from, to time.Time, p *probe) {
			p.check(b, name)
			lat, failed := p.between(from, to)
			b.Logf("%-40s %s", name, describe(lat, failed))
			b.ReportMetric(quantile(lat, 0.5).Seconds()*1000, name+"-p50-ms")
			b.ReportMetric(quantile(lat, 0.99).Seconds()*1000, name+"-p99-ms")
		}
		laneCfg := breakGlassConfig(b)
		lane := startProbe(b, laneCfg, 100*time.Millisecond)
		asUser := startProbe(b, user, 100*time.Millisecond)
		ordinary := startProbe(b, serviceAccountConfig("ordinary", "client"), 100*time.Millisecond)
		from := time.Now()
		time.Sleep(window)
		to := time.Now()
		measure("lane-limited", from, to, lane)
		measure("user-global-default", from, to, asUser)
		measure("serviceaccount-workload-low", from, to, ordinary)

		makeLaneExempt(b)
		from = time.Now()
		time.Sleep(window)
		to = time.Now()
		measure("lane-exempt", from, to, lane)
		measure("user-global-default-2", from, to, asUser)
		measure("serviceaccount-workload-low-2", from, to, ordinary)
		lane.Stop()
		asUser.Stop()

		mustRun(b, asOperator("shed", "--serviceaccount", "culprit/telemetry")...)
		shedAt := time.Now()
		time.Sleep(45 * time.Second)
		recovered, ok := ordinary.recovery(shedAt, time.Now(), 5*time.Second, slo)
		ordinary.Stop()
		if ok {
			b.Logf("shed → ordinary p99 under %s after %s", slo, recovered)
			b.ReportMetric(recovered.Seconds(), "shed-to-slo-s")
		} else {
			b.Logf("shed → ordinary p99 not under %s within 45 s", slo)
		}
		stopCulprit("culprit", "telemetry")
		mustRun(b, "uninstall")
	}
}

// makeLaneExempt points the lane's FlowSchema at the built-in exempt level: the alternative the
// README weighs. (The API allows type Exempt only for the level named exempt.)
func makeLaneExempt(b *testing.B) {
	ctx := context.Background()
	schemas := lab.Client.FlowcontrolV1().FlowSchemas()
	fs, err := schemas.Get(ctx, breakglass.LaneName, metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	fs.Spec.PriorityLevelConfiguration.Name = "exempt"
	if _, err := schemas.Update(ctx, fs, metav1.UpdateOptions{}); err != nil {
		b.Fatal(err)
	}
	time.Sleep(2 * time.Second) // APF reconfigures asynchronously
}
