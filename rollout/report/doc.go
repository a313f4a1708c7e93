// Package report turns a rollout's persisted state into what a human reads after it: a JSON
// document and an HTML page with one chart — each wave's measured steady seats and its
// prediction for the whole fleet, against the budget and the API servers' capacity — and the
// decisions in words.
//
// The model is the state annotation (rollout/state) and nothing else: FromState is pure, so a
// report is the same whether the rollout ran in one process, was resumed after a kill -9, or is
// read later by `bulkhead rollout status --report` on another machine. Rendering is pure too
// (WriteJSON, WriteHTML: no JavaScript, no network, the chart is inline SVG); only WriteFiles
// touches the disk.
package report
