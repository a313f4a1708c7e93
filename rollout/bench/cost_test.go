package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bulkhead-dev/bulkhead/apf"
	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/internal/labtest"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/execute"
	"github.com/bulkhead-dev/bulkhead/rollout/predict"
	"github.com/bulkhead-dev/bulkhead/rollout/soak"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// agentCounts are the fleet sizes measured, from a first wave to the whole lab.
var agentCounts = []int{2, 10, 50, 100, 200}

// BenchmarkCostPerAgent measures how an agent's cost to the API server changes from 2 to 200
// agents, and how close bulkhead's CPU estimate comes to the truth. For each fleet size the same
// agents are switched off, on and off again with everything else unchanged: the truth is the
// API server's CPU (from its /metrics) with them minus without, over a minute each. The estimate
// is what a wave's soak would make of the first 30 s of the same minute, against the 30 s
// before the agents started, as check.JudgeResources does: from the lane's execution time and
// from the CPU difference, combined. The rows also show each part, the CPU per request and the
// wall time per request (which grows as the server gets busy while CPU per request does not).
func BenchmarkCostPerAgent(b *testing.B) {
	ctx := context.Background()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "agent\tagents\trequests/s\tCPU truth (with − without)\testimate (30 s soak)\terror\tfrom execution\tfrom difference\tCPU/request\twall/request\tseats\tresident memory +\tservers' CPU")
	for _, sc := range []scenario{{"moderate-agent", moderateAgent}, {"seed-agent", seedAgent}} {
		for i := 0; i < b.N; i++ {
			costPerAgent(b, ctx, tw, sc, fmt.Sprintf("cost-%s-%d", sc.name, i))
		}
	}
	tw.Flush()
}

func costPerAgent(b *testing.B, ctx context.Context, tw *tabwriter.Writer, sc scenario, ns string) {
	const name = "agent"
	if err := lab.ServiceAccount(ctx, ns, name, "view"); err != nil {
		b.Fatal(err)
	}
	// The agents run in a lane like the one a rollout makes (10% of the seats, no borrowing),
	// and only on nodes labelled for them.
	lane := execute.LaneNames(ns, name)
	if _, err := execute.EnsureLane(ctx, lab.Client, lane, "bench", apf.ServiceAccount(ns, name), 600, 60); err != nil {
		b.Fatal(err)
	}
	key := "bench.bulkhead.dev/" + ns
	ds := labtest.AgentDaemonSet(ns, name, "agent:v1", sc.behavior)
	ds.Spec.Template.Spec.NodeSelector = map[string]string{key: "on"}
	if _, err := lab.Client.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	nodeList, err := lab.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	scraper, err := controlplane.NewScraper(lab.Config, controlplane.Options{})
	if err != nil {
		b.Fatal(err)
	}
	label := func(n int, on bool) {
		value := `null`
		if on {
			value = `"on"`
		}
		patch := []byte(fmt.Sprintf(`{"metadata":{"labels":{%s:%s}}}`, strconv.Quote(key), value))
		for _, node := range nodeList.Items[:n] {
			if _, err := lab.Client.CoreV1().Nodes().Patch(ctx, node.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, n := range agentCounts {
		off := record(ctx, scraper, lane, time.Minute)
		label(n, true)
		waitRunning(b, ctx, ns, n)
		time.Sleep(20 * time.Second) // past every agent's first LIST and random start phase
		on := record(ctx, scraper, lane, time.Minute)
		label(n, false)
		waitRunning(b, ctx, ns, 0)

		truth := batchMeans(values(on, cpuOf)).mean - batchMeans(values(off, cpuOf)).mean
		truthSE := batchMeans(values(on, cpuOf)).se + batchMeans(values(off, cpuOf)).se
		soaked, before := on[:6], off[len(off)-6:]
		ref := check.Reference{ServerCPU: meanOf(before, cpuOf)}
		w := check.Wave{Number: 1, Fleet: nodes, Soak: 30 * time.Second, Elapsed: 30 * time.Second,
			Agents: check.Agents{Desired: n, Ready: n}, Intervals: soaked, Reference: ref,
			Limits: check.DefaultBudget.Limits(check.Capacity{CPU: 2, Seats: 600})}
		estimate := check.JudgeResources(w)[0].Measurement.Steady
		fromExecution := meanOf(soaked, func(iv check.Interval) float64 {
			return check.LaneCPU(iv.Executing, iv.Dispatched, iv.Utilization())
		}).Mean
		fromDifference := meanOf(soaked, cpuOf).Mean - ref.ServerCPU.Mean
		requests := meanOf(on, func(iv check.Interval) float64 { return iv.Dispatched }).Mean
		executing := meanOf(on, func(iv check.Interval) float64 { return iv.Executing }).Mean
		seats := meanOf(on, func(iv check.Interval) float64 { return iv.SeatSeconds }).Mean
		memory := meanOf(on, memOf).Mean - meanOf(off, memOf).Mean
		servers := meanOf(on, cpuOf).Mean
		errPct := "-"
		if truth > 2*truthSE {
			errPct = fmt.Sprintf("%+.0f%%", 100*(estimate.Mean-truth)/truth)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.3f ± %.3f cores\t%s\t%s\t%.3f\t%.3f\t%.1f ms\t%.0f ms\t%.2f\t%.0f MiB\t%.2f cores\n",
			sc.name, n, requests, truth, truthSE, check.Range(check.CPU, estimate.Mean, estimate.Low(), estimate.High()), errPct,
			fromExecution, fromDifference, 1000*truth/requests, 1000*executing/requests, seats, memory/(1<<20), servers)
	}
	propagation := metav1.DeletePropagationBackground
	_ = lab.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{PropagationPolicy: &propagation})
	_ = execute.DeleteLane(ctx, lab.Client, lane)
}

// record is d of scrape intervals, 5 s each, as a soak maps them onto the lane.
func record(ctx context.Context, scraper *controlplane.Scraper, lane state.Lane, d time.Duration) []check.Interval {
	start := time.Now()
	prev := scraper.Scrape(ctx)
	var prevReading *controlplane.Reading
	var out []check.Interval
	for time.Since(start) < d {
		time.Sleep(5 * time.Second)
		cur := scraper.Scrape(ctx)
		r := controlplane.Analyze(prev, cur)
		prev = cur
		out = append(out, soak.IntervalOf(prevReading, r, lane, start))
		prevReading = &r
	}
	return out
}

func cpuOf(iv check.Interval) float64 { return iv.ServerCPU }
func memOf(iv check.Interval) float64 { return iv.ServerMemory }

func values(ivs []check.Interval, f func(check.Interval) float64) []float64 {
	var out []float64
	for _, iv := range ivs {
		out = append(out, f(iv))
	}
	return out
}

// meanOf is the time-weighted mean of f over the intervals, as predict measures a steady window.
func meanOf(ivs []check.Interval, f func(check.Interval) float64) predict.Estimate {
	var samples []predict.Sample
	for _, iv := range ivs {
		samples = append(samples, predict.Sample{End: iv.End, Span: iv.Span, Used: f(iv)})
	}
	return predict.Measure(samples, 0, 0, 0).Steady
}

// waitRunning waits until exactly n agents of the namespace run.
func waitRunning(b *testing.B, ctx context.Context, ns string, n int) {
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		pods, err := lab.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			continue
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				running++
			}
		}
		if running == n && len(pods.Items) == n {
			return
		}
	}
	b.Fatalf("%d agents of %s not running after 5 minutes", n, ns)
}
