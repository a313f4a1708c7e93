// Package controlplane reads the load on a cluster's kube-apiservers, per API Priority and
// Fairness (APF) flow schema and priority level, from their own /metrics.
//
// # Model
//
// I/O sits at the edge, decisions in pure functions:
//
//	Scraper.Scrape(ctx) → Snapshot                 every replica's (or balanced process's) parsed /metrics (or its error)
//	PrometheusSource.SnapshotAt(ctx, t) → Snapshot the same series from a Prometheus, as of t
//	Analyze(prev, cur)  → Reading                  pure: two snapshots → rates, seats, p99s, SLOs
//
// A Scraper finds the replicas in the default/kubernetes EndpointSlice, kept current by one
// watch (never a periodic LIST), falling back to the kubeconfig's server. It scrapes every replica
// concurrently, each within a timeout, through the client's own TLS and credentials with the TLS
// server name pinned to the kubeconfig host so that the serving certificate verifies when a
// replica is dialled by address. Bodies are decoded with prometheus/common/expfmt (delimited
// protobuf is asked for, text accepted) and only the families below are kept.
//
// Behind one balanced address (Options.Endpoint balanced, or auto when the kube-system identity
// Leases count more live API servers than the EndpointSlice lists addresses) nothing in /metrics
// names the process that answered — replicas started together share process_start_time_seconds
// (10-ms ticks) — so the address is read over kept connections, one per process (process.go),
// and a rate is only ever taken between two scrapes over the same connection. Snapshot.Believed
// carries the Leases' count, and Coverage.Basis says in words what a reading rests on when it
// read fewer processes than exist. A PrometheusSource is a Source too (source.go); a scrape that
// Prometheus has not renewed is ReplicaStale in a Reading, left out of the sums. NewSource
// builds the source the flags choose.
//
// Analyze matches replicas by name. Rates are counter deltas over each replica's own scrape
// interval; a counter that went down, or a changed process_start_time_seconds, means the replica
// restarted and its counters count from that start. A replica seen only in cur has gauges but no
// rates (ReplicaNew), one only in prev is ReplicaGone, one whose scrape failed is
// ReplicaUnreachable and contributes nothing. Totals add the replicas' rates and gauges;
// quantiles are taken after adding their histogram bucket deltas, never by averaging quantiles.
// Coverage counts the replicas behind the totals (listed, read, rated), so that a sum over 2 of
// 3 replicas is never mistaken for the whole control plane's load with one replica idle.
// The window is whatever lies between the two snapshots: 2 s in `bulkhead top`, 5 minutes for
// the upstream SLO definition.
//
// # Metrics and formulas (per flow = flow_schema × priority_level)
//
//	dispatched/s      Δ apiserver_flowcontrol_dispatched_requests_total / Δt
//	rejected/s        Δ apiserver_flowcontrol_rejected_requests_total{reason} / Δt
//	executing seats   apiserver_flowcontrol_current_executing_seats (gauge, end of window)
//	in queue          apiserver_flowcontrol_current_inqueue_requests (gauge, end of window)
//	wait p99          p99 of Δ apiserver_flowcontrol_request_wait_duration_seconds buckets
//	                  (execute="true" and "false" together: a request that timed out in its
//	                  queue waited too)
//	seat-seconds/s    Δ request_execution_seconds_sum × (Δ work_estimated_seats_sum /
//	                  Δ work_estimated_seats_count) / Δt
//
// Seat-seconds per second is the average number of APF seats the flow held during the window:
// the share of the server's capacity it consumed. APF has no per-flow seat-time counter, so it is
// built from the two histograms that exist per flow: apiserver_flowcontrol_request_execution_seconds
// (time each request spent executing: the whole request, or a WATCH's initial stage only, both
// `type` values summed) and apiserver_flowcontrol_work_estimated_seats (the seats APF reserved
// for each request, the maximum of its initial and final seats, observed once per request when
// the estimate is made). Their sums give total execution time and the mean seats per request; the
// product is exact when the flow's requests all cost the same seats (a GET is 1; a LIST's estimate
// grows with the objects it may return, capped at 10 here: in the lab one flow's LISTs of ~100
// pods were estimated at 1 seat at some times and 10 at others) and underestimates a flow that
// mixes cheap short requests with expensive long ones. When no request was estimated in the window but one finished
// executing (a long LIST started before it), the flow's lifetime mean seats are used. Exempt
// requests are estimated too (v1.37 reports work_estimated_seats for them) but are never held
// back, so their seat-seconds are load on the server without a limit to compare with.
// ExecutionSecondsPerSecond, the average number of the flow's requests executing, is reported
// beside it.
//
// Per priority level the flows are summed, and capacity comes from
// apiserver_flowcontrol_nominal_limit_seats (the level's configured share of
// --max-requests-inflight + --max-mutating-requests-inflight) and
// apiserver_flowcontrol_current_limit_seats (after borrowing and lending). Utilization is
// seat-seconds/s ÷ current limit. MeasuredSeatSecondsPerSecond is the check on the per-flow
// estimate: apiserver_flowcontrol_priority_level_seat_utilization is a timing-ratio histogram
// whose count grows by every elapsed nanosecond and whose sum by (seats in use ÷ limit) × that
// nanosecond, so Δsum/Δcount × current limit is the level's true mean seats in use. In the lab,
// for a level holding one flow, the two agree within 1% (fixtures_test.go, e2e).
//
// # The servers' own resources
//
// APF seats are a concurrency allowance, not a resource: a server with 600 seats and 2 cores runs
// out of CPU, then memory, long before it runs out of seats. Each Load therefore also carries
// what the process used of its machine (Resources), from the process and Go runtime metrics of
// the same scrape:
//
//	CPU cores used     Δ process_cpu_seconds_total / Δt
//	CPU capacity       go_sched_gomaxprocs_threads (Go ≥ 1.25: the container's CPU limit rounded
//	                   up, at least 2; else the machine's CPUs)
//	resident memory    process_resident_memory_bytes; heap in use go_memstats_heap_inuse_bytes
//	memory limit       go_gc_gomemlimit_bytes when GOMEMLIMIT is set (math.MaxInt64 means unset;
//	                   a container's limit alone is invisible from inside /metrics)
//	bytes sent         Δ process_network_transmit_bytes_total / Δt (the network namespace's);
//	                   response bodies Δ Σ apiserver_response_sizes_sum / Δt
//
// Counter resets are handled as for APF's counters. Summed over replicas; Missing names what
// the metrics did not carry, on any replica, so that a consumer never reads an unknown capacity
// as zero or as infinite.
//
// # SLIs and SLOs
//
// The server-wide SLI is the p99 of Δ apiserver_request_sli_duration_seconds buckets per verb and
// scope (summed over resources), which excludes webhook time and APF queue wait — the per-flow
// wait p99 shows the latter. It is compared with the SLOs of kubernetes/community
// sig-scalability/slos/api_call_latency.md: mutating calls (POST, PUT, PATCH, APPLY, DELETE) on a
// single object ≤ 1 s; reads (GET, LIST) ≤ 1 s at resource scope, ≤ 5 s at namespace scope,
// ≤ 30 s at cluster scope. Upstream measures per resource over 5 minutes; a Reading measures per
// verb and scope over its window, so a short window is a live indication, not an SLO verdict.
package controlplane
