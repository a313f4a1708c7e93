// Package bench measures the lab itself: how the kube-apiserver degrades as more agents run the
// seed incident's pattern (every agent LISTs all pods on a schedule), and what the lab costs to
// start (Startup: time to ready, memory per process). It prints tables; it asserts nothing.
// Benchmarks of bulkhead's capabilities live beside those capabilities in the product module.
//
// Scaling runs one lab (by default 200 nodes × 20 pods) and deploys a DaemonSet whose pods carry
// the seed's behaviour to a growing number of nodes. At each step it waits until the agents run
// and have passed their start-up phase, then for one window measures: a probe's GET latency as an
// ordinary service account (APF-classified like any workload, unlike the exempt admin), the
// agents' LIST latency (from the behaviour emulator), and the apiserver's CPU from /proc.
package bench
