package upstream

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkStaleAnswerFromASilentResolver measures, on the real clock with the defaults, how long a
// client waits for a stale answer when the resolver stops answering: the client response timer
// (1.8 s) plus the forwarder's own delay, which the tests, on a fake clock, cannot see. It prints
// the wait and asserts nothing.
func BenchmarkStaleAnswerFromASilentResolver(b *testing.B) {
	r := startResolver(b)
	r.ttl.Store(0) // every answer is expired at once, so every lookup is a refresh
	f, _ := newForwarder(b, Config{Servers: []string{r.addr}})
	var waits []time.Duration
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("n%d.example.", i) // a name whose refresh has not failed yet
		r.silent.Store(false)
		if _, err := resolve(b, f, name); err != nil {
			b.Fatal(err)
		}
		r.silent.Store(true)
		start := time.Now()
		m, err := resolve(b, f, name)
		waits = append(waits, time.Since(start))
		if err != nil || !isStale(m) {
			b.Fatalf("answer %v err %v, want stale", m, err)
		}
	}
	var most, sum time.Duration
	for _, w := range waits {
		sum += w
		most = max(most, w)
	}
	mean := sum / time.Duration(len(waits))
	fmt.Printf("stale answer from a silent resolver: %d lookups, mean wait %s, max %s (client response timer %s: %s over it at most)\n",
		len(waits), mean.Round(time.Microsecond), most.Round(time.Microsecond), DefaultClientResponseTimer, (most - DefaultClientResponseTimer).Round(time.Microsecond))
	b.ReportMetric(float64(mean)/float64(time.Millisecond), "ms-to-stale")
}
