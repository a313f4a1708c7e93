package controlplane

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Behind one balanced address (a managed control plane's load balancer or VIP) every scrape may
// reach another kube-apiserver process, so counters are kept per process, and a rate is only
// ever the difference of two scrapes of the same process. A process is told from its
// process_start_time_seconds: Linux counts it in clock ticks (10 ms), so replicas that the
// lab started together differ in it (internal/labtest's balancer test checks that), and a
// restarted replica is a new process. Two processes started within the same tick would share
// it; CPU time that went down, or grew faster than the process's cores could burn it, between
// two scrapes of "one" process gives them away, and such a scrape is refused rather than
// subtracted (errSameTick). Two such processes whose CPU times happen to lie within one
// interval's burn of each other are not told apart.

// forgetAfter is how many scrapes in a row a process may go unseen behind its address before
// it is taken for gone (a restarted replica's old process): until then its last scrape is
// carried in every snapshot, so that the next scrape that reaches it rates over its own
// interval.
const forgetAfter = 3

// processID identifies the process behind a scrape, or "" when its metrics do not say.
func processID(families map[string]*dto.MetricFamily) (string, time.Time) {
	m := families[metricProcessStart].GetMetric()
	if len(m) == 0 || value(m[0]) <= 0 {
		return "", time.Time{}
	}
	// In whole clock ticks: the float's error must not move a start into the next tick.
	ticks := int64(math.Round(value(m[0]) * 100))
	return strconv.FormatInt(ticks, 10), time.Unix(0, ticks*int64(10*time.Millisecond)).UTC()
}

// processName is how a process behind a balanced address is named in snapshots and readings.
func processName(address string, started time.Time) string {
	return fmt.Sprintf("%s (process started %s)", address, started.Format("2006-01-02T15:04:05.00Z"))
}

// keptProcess is the last scrape of one process behind a balanced address.
type keptProcess struct {
	last   ReplicaScrape
	missed int
}

// balancedAddress keeps what one balanced address showed of its processes.
type balancedAddress struct {
	processes map[string]*keptProcess
}

// record names a successful scrape after its process and keeps it. A scrape whose metrics do
// not tell the process, or whose counters went down against the kept scrape of the same start
// tick, is returned as failed: it cannot be rated without risking two processes' counters in one
// rate.
func (b *balancedAddress) record(address string, r ReplicaScrape) (string, ReplicaScrape) {
	id, started := processID(r.Families)
	if id == "" {
		r.Err = fmt.Errorf("replica behind %s: its metrics carry no %s, so scrapes through a balanced address cannot be told apart by process", address, metricProcessStart)
		r.Families = nil
		return "", r
	}
	r.Replica = processName(address, started)
	if kept, ok := b.processes[id]; ok && !couldFollow(kept.last, r) {
		r.Err = fmt.Errorf("replica %s: %w", r.Replica, errSameTick)
		r.Families = nil
		delete(b.processes, id)
		return id, r
	}
	b.processes[id] = &keptProcess{last: r}
	return id, r
}

var errSameTick = fmt.Errorf("two processes behind one address started within the same 10 ms (%s) and answer in turn: their scrapes are not rated, as they cannot be told apart", metricProcessStart)

// couldFollow says whether next could be a later scrape of the process that answered last: its
// CPU time neither went down nor grew faster than GOMAXPROCS cores could burn it.
func couldFollow(last, next ReplicaScrape) bool {
	grew := gaugeOf(next, metricCPUSeconds) - gaugeOf(last, metricCPUSeconds)
	elapsed := next.Taken.Sub(last.Taken).Seconds() + last.Duration.Seconds() + next.Duration.Seconds()
	return grew >= 0 && (gaugeOf(next, metricGOMAXPROCS) == 0 || grew <= gaugeOf(next, metricGOMAXPROCS)*elapsed)
}

func gaugeOf(r ReplicaScrape, name string) float64 {
	if m := r.Families[name].GetMetric(); len(m) > 0 {
		return value(m[0])
	}
	return 0
}

// carried returns the last scrapes of the processes not seen in this round (their Taken
// unchanged, so that Analyze rates none of them over this window), and forgets those unseen for
// forgetAfter rounds.
func (b *balancedAddress) carried(seen map[string]bool) []ReplicaScrape {
	var out []ReplicaScrape
	for _, id := range slices.Sorted(maps.Keys(b.processes)) {
		if seen[id] {
			continue
		}
		p := b.processes[id]
		if p.missed++; p.missed > forgetAfter {
			delete(b.processes, id)
			continue
		}
		out = append(out, p.last)
	}
	return out
}
