// Package soak watches one wave: it scrapes the API servers (controlplane) at a fixed
// interval, maps every interval onto the rollout's lane, counts the DaemonSet's agents through a
// pod informer, and asks analyze for a decision after every interval until it is not a hold.
//
// The mapping (LaneSample, OtherFlows, SLIs) is pure:
//
//	lane sample     Σ over the lane's FlowSchema of one interval's Reading: dispatched/s,
//	                rejected/s, seat-seconds/s (mean executing seats), in-queue at both ends
//	other flows     every other flow over the whole soak so far, against a Reading taken
//	                before the rollout began
//	SLIs            the whole soak's p99 per verb and scope, where an SLO exists
//
// Intervals measure the lane; the soak-long window measures the SLIs and the other flows, so
// a p99 rests on every request of the soak rather than on five seconds of them.
package soak
