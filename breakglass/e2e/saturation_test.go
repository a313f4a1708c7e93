//go:build saturation

// The saturation acceptance scenario runs with `make test-saturation`, not in `make test`: on 2
// cores its precondition (the ordinary client's GET p99 above 1 s) depends on the box. The culprit
// always saturates workload-low (all 12 seats held, queue wait p99 5–12 s), but fair queuing
// serves the ordinary client's light flow promptly, so its p99 crosses 1 s only when the CPU
// saturates too: at 3,500 pods 0.75–1.40 s, at 4,500 pods 1.2–3.8 s (3 of 3 runs passed on a
// quiet box, one with 1.2 s). See breakglass/README.md.

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/apf"
	"github.com/bulkhead-dev/bulkhead/breakglass"
)

// The acceptance scenario of the issue, end to end.
func TestBreakGlassStaysFastAndShedRestoresOrdinaryClients(t *testing.T) {
	mustRun(t, "install") // idempotent: the test also runs alone
	createServiceAccount(t, "ordinary", "client", "view")
	lane := startProbe(t, breakGlassConfig(t), 100*time.Millisecond)
	defer lane.Stop()
	ordinary := startProbe(t, serviceAccountConfig("ordinary", "client"), 100*time.Millisecond)
	defer ordinary.Stop()

	start := time.Now()
	idle, err := lab.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	startCulprit(t, "culprit", "telemetry", culpritPods)
	defer stopCulprit("culprit", "telemetry")
	running := time.Now()
	t.Logf("culprit: %d pods running after %s", culpritPods, running.Sub(start).Round(time.Second))
	time.Sleep(5 * time.Second)
	window := startAPFWindow(t)
	time.Sleep(20 * time.Second)
	saturated := time.Now()
	window.log(t, "workload-low", breakglass.LaneName, "global-default")
	// A culprit whose LISTs are never served (a 403 without RBAC) loads the server with nothing;
	// once it saturates workload-low, APF rejects its excess (429).
	lab.RequireAgentsServed(context.Background(), t, idle, "culprit/telemetry")
	ordinary.check(t, "ordinary")
	lane.check(t, "break-glass")
	ordLat, ordFailed := ordinary.between(running.Add(5*time.Second), saturated)
	t.Logf("saturated, ordinary client: %s", describe(ordLat, ordFailed))
	if p99 := quantile(ordLat, 0.99); p99 <= slo {
		t.Fatalf("the culprit did not saturate the server: ordinary GET p99 %s ≤ %s", p99, slo)
	}

	stdout, stderr := mustRun(t, asOperator("shed", "--serviceaccount", "culprit/telemetry", "--reason", "LISTs every pod every second")...)
	shedAt := time.Now()
	t.Logf("shed (%s after the command started): %s%s", shedAt.Sub(saturated).Round(time.Millisecond), stdout, stderr)
	if !strings.Contains(stderr, "using the break-glass lane") {
		t.Errorf("shed did not travel the break-glass lane:\n%s", stderr)
	}
	name := breakglass.ShedName(apf.ServiceAccount("culprit", "telemetry"))

	// No diagnostics scrape here: /metrics costs the server CPU, and the lane is being measured.
	time.Sleep(45 * time.Second)
	end := time.Now()
	recovered, ok := ordinary.recovery(shedAt, end, 5*time.Second, slo)
	after, afterFailed := ordinary.between(shedAt.Add(30*time.Second), end)
	t.Logf("after shed, ordinary client from +30s: %s; recovered %v after %s", describe(after, afterFailed), ok, recovered)
	if !ok || recovered > 30*time.Second || quantile(after, 0.99) >= slo {
		t.Errorf("ordinary GET p99 not back under %s within 30 s of the shed (recovered %v after %s)", slo, ok, recovered)
	}
	laneLat, laneFailed := lane.between(running, end)
	t.Logf("break-glass lane, whole run: %s", describe(laneLat, laneFailed))
	satLat, satFailed := lane.between(running, shedAt)
	t.Logf("break-glass lane, saturated: %s", describe(satLat, satFailed))
	if p99 := quantile(laneLat, 0.99); p99 >= laneSLO || laneFailed > 0 {
		t.Errorf("break-glass GET p99 %s (failed %d), want < %s the whole time", p99, laneFailed, laneSLO)
	}

	waitCulpritRunning(t, "culprit", "telemetry", culpritPods)
	// The jail's FlowSchema is new: its counters started at zero with the shed.
	rejected, err := lab.FlowCounter(context.Background(), "apiserver_flowcontrol_rejected_requests_total", name)
	if err != nil {
		t.Fatal(err)
	}
	if rejected == 0 {
		t.Errorf("the jail rejected nothing: the culprit was not still calling, or not jailed")
	} else {
		t.Logf("the jail rejected %.0f requests of the still-running culprit", rejected)
	}

	list, _ := mustRun(t, asOperator("shed", "list")...)
	t.Logf("shed list:\n%s", list)
	if !jailRejected(list, name) {
		t.Errorf("shed list does not show the jail %s rejecting requests:\n%s", name, list)
	}

	stdout, _ = mustRun(t, asOperator("unshed", name)...)
	if !strings.Contains(stdout, "no longer jailed") {
		t.Errorf("unshed output: %s", stdout)
	}
	assertNoJail(t, name)
}
