// Package rollout is bulkhead's guarded DaemonSet rollout: a fleet-wide agent reaches the
// fleet in waves, inside an APF lane of its own, and is rolled back automatically as soon as
// what it costs the control plane, extrapolated to the whole fleet, would not fit.
//
// The work is split the etcd/raft way — decisions are pure, I/O is at the edges:
//
//	plan     waves and node choice (pure)
//	predict  demand, burst vs steady, per-version cost, fleet prediction (pure)
//	analyze  Analyze(Observations) Decision: proceed / hold / halt, in words (pure)
//	state    the state machine, persisted as an annotation on the DaemonSet (pure)
//	execute  the Kubernetes mechanics: lane, waves, finish, rollback (idempotent steps)
//	report   the state → JSON report and HTML page with a chart (pure)
//
// A rollback's requests take the break-glass lane when it is installed (BreakGlassRollback).
//
// Data flows one way: control-plane readings → analyze.Observations → Decision →
// state transition → execute action → cluster. README.md is the user manual and explains the
// wave mechanism and why it was chosen.
package rollout
