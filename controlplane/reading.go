package controlplane

import (
	"fmt"
	"strings"
	"time"
)

// Reading is the control-plane load over the window between two snapshots. The embedded Load is
// summed over every replica that could be read; Replicas holds each replica's own share.
type Reading struct {
	Window Window `json:"window"`
	Load
	// Coverage says how many of the replicas the sums in Load include.
	Coverage Coverage        `json:"coverage"`
	Replicas []ReplicaStatus `json:"replicas"`
}

// Coverage counts the replicas behind a Reading's sums. A replica that could not be read is
// missing from them, not idle: a sum that covers 2 of 3 replicas is a lower bound of the load
// and of the capacity.
type Coverage struct {
	// Replicas counts the replicas discovery lists in the later snapshot (every state but gone).
	Replicas int `json:"replicas"`
	// Read counts those whose later scrape succeeded: their gauges and capacity are in the sums.
	Read int `json:"read"`
	// Rated counts those read in both snapshots (ok, restarted): their rates are in the sums.
	Rated int `json:"rated"`
	// Source says where the replicas were read (Snapshot.Source).
	Source string `json:"source,omitempty"`
	// Believed is how many API server processes exist by a count that does not depend on
	// reaching them (the identity Leases), 0 when unknown; BelievedFrom says what it rests on.
	Believed     int    `json:"believed,omitempty"`
	BelievedFrom string `json:"believedFrom,omitempty"`
}

// Complete reports whether the sums include every listed replica, rates and all, and no fewer
// than are believed to exist.
func (c Coverage) Complete() bool { return c.Rated == c.Replicas && c.Rated >= c.Believed }

// String says it in words: "covers 2 of 3 replicas", "covers 3 of 3 replicas (rates from 2)",
// "covers 1 of 1 replicas; 3 API servers exist (kube-apiserver identity Leases)".
func (c Coverage) String() string {
	s := fmt.Sprintf("covers %d of %d replicas", c.Read, c.Replicas)
	if c.Rated != c.Read {
		s += fmt.Sprintf(" (rates from %d)", c.Rated)
	}
	if c.Believed > 0 && c.Believed != c.Replicas {
		s += fmt.Sprintf("; %d API servers exist (%s)", c.Believed, c.BelievedFrom)
	}
	return s
}

// Basis says, for a decision, what the sums rest on when they do not plainly cover every API
// server: how many processes were read, through what, how many are believed to exist and on
// what the capacity is based; "" when every believed server was read.
func (c Coverage) Basis() string {
	switch {
	case c.Believed > 0 && c.Rated >= c.Believed:
		return "" // every API server was read
	case c.Believed == 0 && !strings.HasPrefix(c.Source, balancedSource):
		return "" // discovery lists the replicas: those read are all there are
	}
	var exist string
	if c.Believed > 0 {
		exist = fmt.Sprintf("%d exist (%s)", c.Believed, c.BelievedFrom)
	} else {
		exist = "how many exist is " + c.BelievedFrom
	}
	return fmt.Sprintf("read %d API server process(es) through %s; %s: load and capacity are those of the processes read, the others taken to carry alike (a balancer spreads connections evenly)",
		c.Rated, c.Source, exist)
}

// Window is the time span a Reading covers (the earliest and latest scrape times involved).
type Window struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Seconds float64   `json:"seconds"`
}

// Load is what one replica, or all replicas together, carried during the window.
type Load struct {
	Flows          []FlowLoad  `json:"flows"`
	PriorityLevels []LevelLoad `json:"priorityLevels"`
	SLIs           []SLI       `json:"slis"`
	Seats          Seats       `json:"seats"`
	Resources      Resources   `json:"resources"`
}

// Resources is what the API server processes used of their machines: CPU, memory and the network,
// from the process and Go runtime metrics every kube-apiserver exposes. A managed control plane
// may strip some; Missing names what could not be read, and a zero then means unknown, not none.
type Resources struct {
	// CPUCores is the CPU time burned per second of the window (Δ process_cpu_seconds_total / Δt).
	CPUCores float64 `json:"cpuCores"`
	// CPUCapacityCores is GOMAXPROCS (go_sched_gomaxprocs_threads). Go ≥ 1.25 derives it from the
	// container's CPU limit, rounded up and at least 2, else from the machine's CPUs: the cores
	// the process can use at once.
	CPUCapacityCores float64 `json:"cpuCapacityCores"`
	// ResidentBytes is process_resident_memory_bytes at the end of the window; HeapInuseBytes
	// is the Go heap in use (go_memstats_heap_inuse_bytes).
	ResidentBytes  float64 `json:"residentBytes"`
	HeapInuseBytes float64 `json:"heapInuseBytes"`
	// MemoryLimitBytes is the Go runtime's memory limit (GOMEMLIMIT, go_gc_gomemlimit_bytes) when
	// one is set. A container's memory limit is not visible in /metrics: without GOMEMLIMIT
	// it is unknown (0, and "memory limit" is in Missing).
	MemoryLimitBytes float64 `json:"memoryLimitBytes"`
	// TransmitBytesPerSecond is what the process's network namespace sent per second
	// (process_network_transmit_bytes_total); ResponseBytesPerSecond the response bodies the
	// API server wrote (Σ apiserver_response_sizes).
	TransmitBytesPerSecond float64 `json:"transmitBytesPerSecond"`
	ResponseBytesPerSecond float64 `json:"responseBytesPerSecond"`
	// Missing names the resources the metrics did not tell: "cpu", "cpu capacity", "memory",
	// "memory limit", "network". Summed over replicas, one replica's gap is the total's.
	Missing []string `json:"missing,omitempty"`
}

// FlowLoad is the load of one flow schema within one priority level. Rates are per second over
// the window; gauges are the value at the end of the window.
type FlowLoad struct {
	FlowSchema    string `json:"flowSchema"`
	PriorityLevel string `json:"priorityLevel"`
	// DispatchedPerSecond counts requests APF let through to execution.
	DispatchedPerSecond float64 `json:"dispatchedPerSecond"`
	// WatchesPerSecond counts the dispatched requests that were WATCHes (their initial stage
	// finished executing in the window); the rest are ordinary requests.
	WatchesPerSecond float64 `json:"watchesPerSecond"`
	// RejectedPerSecond sums RejectedByReason (queue-full, concurrency-limit, time-out, cancelled).
	RejectedPerSecond float64            `json:"rejectedPerSecond"`
	RejectedByReason  map[string]float64 `json:"rejectedByReason,omitempty"`
	// SeatSecondsPerSecond is the average number of seats the flow held during the window (see doc.go).
	SeatSecondsPerSecond float64 `json:"seatSecondsPerSecond"`
	// ExecutionSecondsPerSecond is the average number of its requests executing, seats ignored;
	// it is the only cost signal for the exempt level, which holds no seats.
	ExecutionSecondsPerSecond float64 `json:"executionSecondsPerSecond"`
	// AverageSeats is the mean APF seat estimate of the flow's requests in the window.
	AverageSeats float64 `json:"averageSeats"`
	// ExecutingSeats and ExecutingRequests are gauges at the end of the window.
	ExecutingSeats    float64 `json:"executingSeats"`
	ExecutingRequests float64 `json:"executingRequests"`
	// InQueue is the number of the flow's requests waiting in APF queues at the end of the window.
	InQueue float64 `json:"inQueue"`
	// Wait is the APF queue wait of requests that finished waiting in the window.
	Wait Quantile `json:"wait"`
}

// LevelLoad is the load and capacity of one priority level.
type LevelLoad struct {
	PriorityLevel       string             `json:"priorityLevel"`
	DispatchedPerSecond float64            `json:"dispatchedPerSecond"`
	RejectedPerSecond   float64            `json:"rejectedPerSecond"`
	RejectedByReason    map[string]float64 `json:"rejectedByReason,omitempty"`
	// SeatSecondsPerSecond sums the level's flows (the estimate described in doc.go).
	SeatSecondsPerSecond float64 `json:"seatSecondsPerSecond"`
	// MeasuredSeatSecondsPerSecond is the same quantity as APF itself integrates it per level
	// (apiserver_flowcontrol_priority_level_seat_utilization × current limit): the check on the
	// per-flow estimate.
	MeasuredSeatSecondsPerSecond float64  `json:"measuredSeatSecondsPerSecond"`
	ExecutionSecondsPerSecond    float64  `json:"executionSecondsPerSecond"`
	ExecutingSeats               float64  `json:"executingSeats"`
	InQueue                      float64  `json:"inQueue"`
	Wait                         Quantile `json:"wait"`
	// NominalLimitSeats is the level's share of the server's seats; CurrentLimitSeats is what it
	// may use now after borrowing and lending.
	NominalLimitSeats float64 `json:"nominalLimitSeats"`
	CurrentLimitSeats float64 `json:"currentLimitSeats"`
	// Utilization is SeatSecondsPerSecond / CurrentLimitSeats (0 when the level has no seats).
	Utilization float64 `json:"utilization"`
}

// Seats totals execution seats over priority levels.
type Seats struct {
	// Executing is the seats in use at the end of the window.
	Executing float64 `json:"executing"`
	// SeatSecondsPerSecond is the average seats held over the window.
	SeatSecondsPerSecond float64 `json:"seatSecondsPerSecond"`
	// Nominal and Current sum the levels' nominal and current limits: the server's seat capacity.
	Nominal float64 `json:"nominal"`
	Current float64 `json:"current"`
}

// SLI is the latency of one verb and scope, compared with the upstream SLO.
type SLI struct {
	Verb  string `json:"verb"`
	Scope string `json:"scope"`
	// Latency is from apiserver_request_sli_duration_seconds bucket deltas over the window.
	Latency Quantile `json:"latency"`
	// SLOSeconds is the upstream p99 objective; 0 when no SLO covers this verb and scope.
	SLOSeconds float64 `json:"sloSeconds"`
	// Breached is true when the window's p99 exceeds the SLO.
	Breached bool `json:"breached"`
}

// Quantile is a p99 estimated from histogram bucket deltas, and how many observations it rests on.
// With no observations P99Seconds is 0 and means nothing.
type Quantile struct {
	Count      float64 `json:"count"`
	P99Seconds float64 `json:"p99Seconds"`
}

// ReplicaState says how much of a replica's load a Reading could compute.
type ReplicaState string

const (
	// ReplicaOK: both snapshots read; rates and gauges are valid.
	ReplicaOK ReplicaState = "ok"
	// ReplicaNew: first seen in the later snapshot; gauges are valid, rates need another scrape.
	ReplicaNew ReplicaState = "new"
	// ReplicaRestarted: the process restarted within the window; rates count from its start.
	ReplicaRestarted ReplicaState = "restarted"
	// ReplicaUnreachable: the later scrape failed; Error says why.
	ReplicaUnreachable ReplicaState = "unreachable"
	// ReplicaGone: in the earlier snapshot only; discovery no longer lists it.
	ReplicaGone ReplicaState = "gone"
	// ReplicaStale: the later snapshot holds the same scrape as the earlier one (not reached
	// again behind a balanced address, or not scraped again by Prometheus): left out of the sums.
	ReplicaStale ReplicaState = "stale"
)

// ReplicaStatus is one kube-apiserver replica's part of a Reading.
type ReplicaStatus struct {
	Replica       string       `json:"replica"`
	State         ReplicaState `json:"state"`
	Error         string       `json:"error,omitempty"`
	ScrapedBytes  int64        `json:"scrapedBytes"`
	ScrapeSeconds float64      `json:"scrapeSeconds"`
	Load          *Load        `json:"load,omitempty"`
}

// Reachable reports whether every replica of the later snapshot could be read afresh.
func (r Reading) Reachable() bool {
	for _, rep := range r.Replicas {
		if rep.State == ReplicaUnreachable || rep.State == ReplicaStale {
			return false
		}
	}
	return true
}
