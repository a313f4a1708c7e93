package check

import (
	"time"

	"github.com/bulkhead-dev/bulkhead/rollout/predict"
)

// Resource is something of the API servers' that a fleet can exhaust.
type Resource string

const (
	CPU    Resource = "cpu"
	Memory Resource = "memory"
	Seats  Resource = "seats"
)

// Resources lists them in the order they are judged and shown: CPU first, because the seats'
// and memory's predictions depend on how busy the fleet would make the CPU.
var Resources = []Resource{CPU, Memory, Seats}

// Interval is one scrape interval of a wave: what the lane's requests did (exact, from its APF
// metrics) and what the API servers used (summed over replicas).
type Interval struct {
	// End is when the interval ended, measured from the start of the wave; Span is its length.
	End, Span time.Duration
	// Dispatched, Rejected and Watches are the lane's request rates; Watches are the dispatched
	// requests that were WATCHes, the rest are ordinary requests.
	Dispatched, Rejected, Watches float64
	// QueuedAtStart and QueuedAtEnd are the lane's requests waiting in APF queues.
	QueuedAtStart, QueuedAtEnd float64
	// Executing is the lane's requests in flight on average (execution-seconds per second);
	// SeatSeconds the seats they held on average.
	Executing, SeatSeconds float64
	// ServerCPU is the cores the API servers burned; ServerMemory their resident bytes at the
	// end of the interval. CPUKnown and MemoryKnown say whether the metrics had them.
	ServerCPU, ServerMemory float64
	CPUKnown, MemoryKnown   bool
	// Replicas are the API server replicas read in the interval, each on its own: the agents'
	// connections spread over them by a load balancer, rarely evenly.
	Replicas []ReplicaUse
}

// ReplicaUse is one API server replica in an interval: the cores it burned and has, and the
// lane's CPU on it as APF's counters price it (LaneCPU).
type ReplicaUse struct {
	Name                   string
	CPU, Capacity, LaneCPU float64
}

// Utilization is the fraction of the API servers' CPU capacity they burned in the interval,
// over the replicas read; 0 when their CPU or capacity is not known.
func (iv Interval) Utilization() float64 {
	var capacity float64
	for _, r := range iv.Replicas {
		capacity += r.Capacity
	}
	if !iv.CPUKnown || capacity <= 0 {
		return 0
	}
	return iv.ServerCPU / capacity
}

// Utilization is the fraction of the replica's CPU capacity it burned; 0 when its capacity is
// not known.
func (r ReplicaUse) Utilization() float64 {
	if r.Capacity <= 0 {
		return 0
	}
	return r.CPU / r.Capacity
}

// ordinary is the rate of the lane's requests that were not WATCHes.
func (iv Interval) ordinary() float64 { return max(0, iv.Dispatched-iv.Watches) }

// sample is the interval as predict sees it, using used of some resource per second.
func (iv Interval) sample(used float64) predict.Sample {
	return predict.Sample{End: iv.End, Span: iv.Span, DispatchedPerSec: iv.Dispatched, RejectedPerSec: iv.Rejected,
		QueuedAtStart: iv.QueuedAtStart, QueuedAtEnd: iv.QueuedAtEnd, Used: used}
}

// Reference is the API servers in a window before the wave's agents changed anything: what the
// CPU difference is measured against.
type Reference struct {
	// ServerCPU is the servers' mean CPU in the window (cores, with its error).
	ServerCPU predict.Estimate
	// LaneCPU is the lane's own CPU in it: zero before a new DaemonSet's first wave, the old
	// version's during an update's baseline.
	LaneCPU predict.Estimate
}

// Agents counts the DaemonSet's pods for a wave.
type Agents struct {
	// Desired is how many new-version pods exist after this wave (cumulative); Ready is how
	// many of them are Ready; Started is how many were created in this wave.
	Desired, Ready, Started int
	// Old is the number of old-version pods still running (updates only).
	Old int
	// ReadyAt is the wave's elapsed time when Ready reached Desired; only meaningful then.
	ReadyAt time.Duration
}

// Measured is one resource's record of a finished wave: what the lane used steadily, its
// start-up burst, and what the wave predicted for the fleet.
type Measured struct {
	Steady            predict.Estimate `json:"steady"`
	BurstPeakPerAgent float64          `json:"burst,omitempty"`
	// Predicted is the fleet's demand at 100% as this wave saw it (95% interval); nil when no
	// cost could be fitted.
	Predicted *Interval95 `json:"predicted,omitempty"`
}

// Interval95 is an estimate with its 95% interval.
type Interval95 struct {
	Mean float64 `json:"mean"`
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

func interval95(e predict.Estimate) *Interval95 {
	return &Interval95{Mean: e.Mean, Low: e.Low(), High: e.High()}
}

// Record is what a finished wave leaves for the ones after it: its agents, each resource's
// measurement, and how busy the servers' CPU was (the slowdown its seat and memory demand was
// measured at; 0 when unknown).
type Record struct {
	Old, New    int
	Resources   map[Resource]Measured
	Utilization float64
}
