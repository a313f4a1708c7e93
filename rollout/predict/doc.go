// Package predict turns what a wave's lane measured into what the whole fleet will cost.
// It is pure arithmetic on samples; the executor feeds it, analyze judges its output.
//
// The model, step by step:
//
//  1. Demand, not usage (DemandOf). Each scrape interval of the rollout's lane (its own
//     FlowSchema, so every request in it is the DaemonSet's) gives dispatched and rejected
//     request rates, executed seat-seconds and the queue length at both ends. One request's
//     cost is executed seat-seconds per dispatched request; demand is that cost times all
//     arrivals (dispatched + rejected + queue growth). A lane that throttles its agents thus
//     reports their appetite, never the throttled usage.
//  2. Burst vs steady (Measure). Intervals that begin once every agent of the wave is Ready
//     and has settled are steady state; earlier ones are the start-up burst (first LIST,
//     informer sync). Steady demand is a time-weighted mean with a Student-t standard error,
//     floored at a few percent because scrape timing limits any rate's precision. The burst
//     is kept per started agent: its peak above steady and its extra seat-seconds.
//  3. Cost per agent (FitCost). Waves are points (old agents, new agents, steady demand);
//     weighted least squares fits demand = a·old + b·new with no intercept. A new DaemonSet
//     has no old agents, so b is demand per agent. An update needs a baseline soak (all old)
//     to tell a from b. Waves that disagree with the line widen the errors (reduced χ²).
//  4. The fleet (Cost.Predict). Demand at 100% = fleet size × b, with a 95% interval.
//     Assumption, stated plainly: an agent's cost does not depend on how many other agents
//     run. Cost that grows with the cluster (an agent listing all pods costs ∝ pods) is
//     captured because waves run in the production cluster at its full size; only the agent
//     count is extrapolated, linearly. Near saturation requests slow down and cost more, so
//     the prediction is then a lower bound — the budget keeps the rollout far from there.
//     Heterogeneous nodes (an agent whose cost follows its node's pod count) are only
//     sampled by the wave's nodes; later waves correct the fit.
//  5. The next wave (Cost.MaxNextWave). The largest number of agents to switch at once so
//     that steady demand plus their start-up burst stays within budget, using the upper end
//     of each cost's interval.
package predict
