package predict

import (
	"math"
	"time"
)

// Sample is what the rollout's lane did between two scrapes of the API servers, summed over
// replicas. Every field maps onto a flow-schema-labelled APF metric of the lane:
// apiserver_flowcontrol_dispatched_requests_total, ..._rejected_requests_total (all reasons),
// the execution seat-seconds (..._request_execution_seconds × ..._work_estimated_seats, or the
// seat-utilisation integrator) and ..._current_inqueue_requests at both ends.
type Sample struct {
	// End is when the interval ended, measured from the start of the wave (the moment its
	// pods were created); Span is its length.
	End, Span time.Duration
	// DispatchedPerSec and RejectedPerSec are request rates over the interval.
	DispatchedPerSec, RejectedPerSec float64
	// ExecutingSeats is the mean number of seats the lane's requests occupied (seat-seconds
	// executed per second).
	ExecutingSeats float64
	// QueuedAtStart and QueuedAtEnd are requests waiting in the lane's queues.
	QueuedAtStart, QueuedAtEnd float64
}

// Demand is the lane's seat demand in one interval: what the agents would have used had the
// lane not held them back.
type Demand struct {
	Seats float64
	// Throttled is set when the lane queued more or rejected: Seats then exceeds what executed.
	Throttled bool
	// LowerBound is set when nothing was dispatched, so the cost of a request is unknown and
	// Seats only counts what executed.
	LowerBound bool
}

// DemandOf converts a sample into seats demanded. Executed seat-seconds per dispatched request
// give the cost of one request; arrivals are dispatched + rejected + queue growth, so
//
//	demand = (dispatched/s + rejected/s + Δqueued/span) × executingSeats / dispatched/s
//
// which is executing + rejected + queued, each priced as a request that executed. A lane that
// throttles its agents therefore still reports their true appetite, never the throttled usage.
// fallbackSeatSecondsPerRequest prices requests when none were dispatched in the interval
// (pass 0 when unknown).
func DemandOf(s Sample, fallbackSeatSecondsPerRequest float64) Demand {
	growth := 0.0
	if s.Span > 0 {
		growth = (s.QueuedAtEnd - s.QueuedAtStart) / s.Span.Seconds()
	}
	throttled := s.RejectedPerSec > 0 || growth > 0
	perRequest := fallbackSeatSecondsPerRequest
	if s.DispatchedPerSec > 0 {
		perRequest = s.ExecutingSeats / s.DispatchedPerSec
	}
	if perRequest <= 0 {
		return Demand{Seats: s.ExecutingSeats, Throttled: throttled, LowerBound: throttled}
	}
	// A draining queue (negative growth) means earlier arrivals are executing now: the
	// executing seats already count them, so it must not lower the demand.
	arrivals := s.DispatchedPerSec + s.RejectedPerSec + math.Max(growth, 0)
	return Demand{Seats: arrivals * perRequest, Throttled: throttled}
}

// seatSecondsPerRequest is the lane's mean request cost over samples, the price for intervals
// where nothing was dispatched.
func seatSecondsPerRequest(samples []Sample) float64 {
	var seatSeconds, requests float64
	for _, s := range samples {
		seatSeconds += s.ExecutingSeats * s.Span.Seconds()
		requests += s.DispatchedPerSec * s.Span.Seconds()
	}
	if requests == 0 {
		return 0
	}
	return seatSeconds / requests
}
