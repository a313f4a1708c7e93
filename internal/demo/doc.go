// Package demo replays the December 2024 incident in the lab, twice: once unguarded (the
// telemetry DaemonSet applied the ordinary way to every node) and once guarded (the same
// DaemonSet through `bulkhead rollout apply`, with the break-glass lane installed).
//
// Each run gets a fresh lab of the same size, so both start from the same cluster state. While a
// run lasts, a Recorder takes one Sample every couple of seconds:
//
//   - an API probe: GETs as an ordinary service account (APF classifies it like any workload;
//     the lab's admin is exempt and would understate the damage), latency p50/p99 and failures;
//   - the control plane's own view (package controlplane): server-side GET p99, rejections, and
//     the seats each flow holds;
//   - DNS: a client resolving the lab's Service names continuously against CoreDNS v1.15.0 and
//     bulkhead dns, both fed by the API, both restarted midway as pods are under pressure;
//   - the DaemonSet's reach: how many nodes run the agent.
//
// Summarize turns a run's samples into the numbers the side-by-side table and the HTML report
// show; it is pure and table-tested. Run is the I/O edge: processes, clients and the lab.
package demo
