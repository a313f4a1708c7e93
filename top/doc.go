// Package top renders controlplane Readings for people and scripts: the live, refreshing view of
// `bulkhead top` and its one-shot table and JSON forms.
//
// The model is a View (sort key, per-replica or summed, row limit) applied to a Reading. Render
// is a pure function of both, so the table is golden-testable; Live owns the clock and the keys:
// it scrapes every interval, analyzes the last two snapshots and redraws, and changes the View when
// a key arrives. A replica that cannot be read is shown as unreachable and the view keeps going.
package top
