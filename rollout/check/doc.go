// Package check holds the gate signals of a guarded rollout. Each check reads what a wave did to
// the API servers, predicts what the whole fleet would do where that makes sense, and holds the
// rollout to a limit, returning a verdict with its reason in words. Checks are pure: they take a
// Wave (the scrape intervals since the wave began, the agents, the earlier waves' records) and
// never read a clock, a cluster or the network.
//
// # Resources: seats, CPU and memory
//
// APF seats are a concurrency allowance, not a resource. A server with 600 seats and 2 cores runs
// out of CPU, then memory (every LIST in flight holds its response), long before it runs out of
// seats, and a request's wall time — what seat-seconds integrate — grows as the server gets busy.
// So a rollout is gated on each resource that can run out, each with its own budget, a share of
// the API servers' capacity summed over replicas (Budget, Limits).
//
// The lane (the DaemonSet's own FlowSchema) labels the agents' requests exactly: APF counts
// them dispatched, rejected and queued, and integrates the time they execute and the seats they
// hold. The process's CPU counter is the whole server's. Each resource is read per scrape
// interval as what the lane used, and predict turns a wave's intervals into a steady demand
// (what the agents would use unthrottled: dispatched + rejected + queued requests, each priced
// as one that executed), its start-up burst, a fit across waves and versions, and the fleet.
//
// CPU (cores). Two estimates of the lane's CPU per wave, combined by their precision:
//
//	from APF's counters  Kappa × the lane's execution-seconds per second, deflated by the
//	                     servers' slowdown 1/(1 − ρ) at their CPU utilisation ρ, +
//	                     PerRequestCPU × its requests per second: a request keeps about one
//	                     core busy while it executes on an idle server (on a busy one it takes
//	                     longer for the same CPU), and costs about 2 ms outside APF's window
//	                     (TLS, HTTP/2, authentication, authorisation). Precise at any wave size
//	                     (the counters are exact), but only as good as its constants: it
//	                     overstates requests that wait on etcd while they execute, and requests
//	                     slowed by what the servers' own CPU does not show (a busy shared host).
//	from the difference  the API servers' CPU during the wave minus before it (the reference
//	                     window: the baseline before wave 1, whose lane CPU is known: nothing
//	                     for a new DaemonSet, the current version for an update), with the
//	                     error of both means. Exact in expectation, but blind below the
//	                     server's own noise (±0.03 cores per 5 s interval in the lab): it takes
//	                     over once the wave is large enough to be seen.
//
// The weights count the constants' uncertainty; the interval a decision rests on is the data's
// own, so a soak never waits for an uncertainty that soaking cannot remove: the next, larger wave
// measures what the constants only estimate.
//
// CPU per request is nearly constant from 2 to 200 agents (measured: README), so the fleet's
// CPU is extrapolated linearly in agents.
//
// Seats. Seat-seconds per second, as APF integrates them, for the lane. A request's wall time
// grows with the server's CPU utilisation ρ, so seat demand measured at ρ is rescaled to the
// fleet's predicted ρ with a processor-sharing slowdown, 1/(1 − ρ) (capped at 20×): linear
// extrapolation of seat-seconds is a lower bound exactly when it matters.
//
// Memory (bytes). A request in flight holds its response; APF's seat estimate already scales
// with the objects a LIST returns (about one seat per 100 KB, at most 10). The lane's memory is
// its seats in use × BytesPerSeat (2.5 MiB: the API server's resident memory grew by 1.7–2.6 MiB
// per seat the seed's agents held in the lab, 13 MiB of heap per 10-seat LIST of 4,000 pods in
// flight). It rescales with the slowdown as seats do: more requests are in flight when each
// takes longer. A limit is known only from GOMEMLIMIT or the user (--apiserver-memory).
//
// # Guards
//
// SLOs (the servers' own latency indicators), collateral damage (other flows rejected or
// waiting more than before the rollout) and readiness (agents Ready within the soak) halt at
// once, with no prediction.
//
// # Evidence
//
// An agent that polls every few minutes may make no request during a soak. A wave whose agents
// made ordinary requests at start-up but none since is not measured as free: until a request
// shows, each agent's steady demand is bounded by one request's cost divided by the time
// without one, which shrinks as the soak goes on; the wave holds while that bound would not fit,
// and proceeds as soon as it does, or as soon as requests show.
package check
