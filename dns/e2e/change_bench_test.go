package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkServiceChangeToAnswer measures how long an API change takes to show in bulkhead dns's
// answers (the README's ~50–250 ms): a ClusterIP Service created, a headless Service's
// EndpointSlice created, both deleted; five rounds, polled every 10 ms over UDP. It prints a table
// and asserts nothing.
func BenchmarkServiceChangeToAnswer(b *testing.B) {
	const rounds = 5
	n := startNode(b, filepath.Join(b.TempDir(), "dns.snapshot"), "127.0.0.1:0")
	defer n.Stop()
	waitReady(b, n)
	steps := []string{"ClusterIP service created", "headless EndpointSlice created", "ClusterIP service deleted", "headless service deleted"}
	took := map[string][]time.Duration{}
	for round := range rounds {
		for step, d := range serviceChanges(b, n.DNSAddr(), fmt.Sprintf("-bench-%d", round)) {
			took[step] = append(took[step], d)
		}
	}
	fmt.Printf("\nAPI change → answer in bulkhead dns, %d rounds (polled every 10 ms)\n", rounds)
	fmt.Printf("%-32s %10s %10s %10s\n", "change", "min", "median", "max")
	for _, step := range steps {
		d := took[step]
		slices.Sort(d)
		fmt.Printf("%-32s %10s %10s %10s\n", step, d[0].Round(time.Millisecond), d[len(d)/2].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
	}
	for b.Loop() { // the measurement above is the benchmark; b.Loop keeps it to one run
	}
}
