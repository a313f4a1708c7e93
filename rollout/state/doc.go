// Package state is a rollout's memory: a small state machine persisted as one JSON
// annotation (rollout.bulkhead.dev/state) on the DaemonSet itself. Because the state lives in
// the cluster, `bulkhead rollout status` works from any machine, two CLIs cannot run two
// rollouts of one DaemonSet unnoticed, and a CLI killed at any instant (even kill -9) is
// resumed by reading the annotation back.
//
// Phases, and the action each calls for (State.NextAction):
//
//	Baseline    (updates only) soak the current version in its lane    → Soak
//	Rolling     switch the current wave's nodes                         → RollWave
//	Soaking     measure the wave, ask analyze                           → Soak
//	Finishing   restore the user's strategy/template, remove the lane   → Finish
//	RollingBack squeeze the lane, restore the old pods                  → Rollback
//	Complete, RolledBack                                                → None
//
// Paused turns every action but Rollback into Wait. Transitions are pure methods returning a
// new State (New, WaveRolled, Decided, Finished, RolledBackAt, Pause, Resume, Abort) and refuse
// to run out of order.
//
// Why resuming never repeats or skips an action: the state records only *which* action is due,
// never progress inside it, and every action is idempotent and measures its own progress from
// the cluster — RollWave takes the next nodes of a deterministic order that are not switched
// yet (node label present, or pod at the new revision), Finish and Rollback re-check each
// object before changing it. The annotation is written after an action completes; a crash in
// between makes the next process redo a finished action, which changes nothing. The soak is
// the one step that restarts (Resume resets SoakStarted): the dead process's samples are
// gone, and a fresh soak of running agents is a safe, slightly longer, measurement.
package state
