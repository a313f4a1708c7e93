package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkServiceChangeToAnswer measures how long an API change takes to show in bulkhead dns's
// answers (the README's ~50–250 ms): per round, a ClusterIP Service created, a headless Service's
// EndpointSlice created, both deleted, each polled every 10 ms over UDP. It prints a table and
// asserts nothing; ns/op is one round.
func BenchmarkServiceChangeToAnswer(b *testing.B) {
	n := startNode(b, filepath.Join(b.TempDir(), "dns.snapshot"), "127.0.0.1:0")
	defer n.Stop()
	waitReady(b, n)
	steps := []string{"ClusterIP service created", "headless EndpointSlice created", "ClusterIP service deleted", "headless service deleted"}
	took := map[string][]time.Duration{}
	var all []time.Duration
	for round := 0; b.Loop(); round++ {
		for step, d := range serviceChanges(b, n.DNSAddr(), fmt.Sprintf("-bench-%d", round)) {
			took[step] = append(took[step], d)
			all = append(all, d)
		}
	}
	fmt.Printf("\nAPI change → answer in bulkhead dns, %d rounds (polled every 10 ms)\n", len(took[steps[0]]))
	fmt.Printf("%-32s %10s %10s %10s\n", "change", "min", "median", "max")
	for _, step := range steps {
		d := took[step]
		slices.Sort(d)
		fmt.Printf("%-32s %10s %10s %10s\n", step, d[0].Round(time.Millisecond), d[len(d)/2].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
	}
	slices.Sort(all)
	b.ReportMetric(float64(all[len(all)/2])/float64(time.Millisecond), "ms-median-to-answer")
}
