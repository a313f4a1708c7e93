package predict

import (
	"math"
	"time"
)

// Sample is what the rollout's lane did between two scrapes of the API servers, summed over
// replicas, in terms of one resource: its requests (APF's flow-schema-labelled dispatched and
// rejected counters and in-queue gauges, exact for the lane) and how much of the resource they
// used (seats, cores or bytes; the checks say how each is read).
type Sample struct {
	// End is when the interval ended, measured from the start of the wave (the moment its
	// pods were created); Span is its length.
	End, Span time.Duration
	// DispatchedPerSec and RejectedPerSec are request rates over the interval.
	DispatchedPerSec, RejectedPerSec float64
	// Used is how much of the resource the lane's executing requests held on average over
	// the interval: seat-seconds per second, CPU cores, bytes.
	Used float64
	// QueuedAtStart and QueuedAtEnd are requests waiting in the lane's queues.
	QueuedAtStart, QueuedAtEnd float64
}

// Demand is the lane's demand for a resource in one interval: what the agents would have used
// had the lane not held them back.
type Demand struct {
	Value float64
	// Throttled is set when the lane queued more or rejected: Value then exceeds what executed.
	Throttled bool
	// LowerBound is set when nothing was dispatched, so the cost of a request is unknown and
	// Value only counts what executed.
	LowerBound bool
}

// DemandOf converts a sample into the resource demanded. What was used per dispatched request
// is the cost of one request; arrivals are dispatched + rejected + queue growth, so
//
//	demand = (dispatched/s + rejected/s + Δqueued/span) × used / dispatched/s
//
// which is what executed plus the rejected and queued requests, each priced as one that
// executed. A lane that throttles its agents therefore still reports their true appetite,
// never the throttled usage. When nothing was dispatched in the interval, held-back requests
// are priced at fallbackPerRequest (pass 0 when unknown: the demand is then only a lower
// bound), and an interval in which nothing arrived keeps what was used (requests dispatched
// earlier, still executing).
func DemandOf(s Sample, fallbackPerRequest float64) Demand {
	growth := 0.0
	if s.Span > 0 {
		growth = (s.QueuedAtEnd - s.QueuedAtStart) / s.Span.Seconds()
	}
	// A draining queue (negative growth) means earlier arrivals are executing now: the use
	// already counts them, so it must not lower the demand.
	heldBack := s.RejectedPerSec + math.Max(growth, 0)
	throttled := heldBack > 0
	switch {
	case s.DispatchedPerSec > 0:
		return Demand{Value: (s.DispatchedPerSec + heldBack) * s.Used / s.DispatchedPerSec, Throttled: throttled}
	case !throttled:
		return Demand{Value: s.Used}
	case fallbackPerRequest > 0:
		return Demand{Value: heldBack * fallbackPerRequest, Throttled: true}
	}
	return Demand{Value: s.Used, Throttled: true, LowerBound: true}
}

// PerRequest is the lane's mean request cost over samples (resource-seconds per request), the
// price for intervals where nothing was dispatched.
func PerRequest(samples []Sample) float64 {
	var used, requests float64
	for _, s := range samples {
		used += s.Used * s.Span.Seconds()
		requests += s.DispatchedPerSec * s.Span.Seconds()
	}
	if requests == 0 {
		return 0
	}
	return used / requests
}
