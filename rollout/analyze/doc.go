// Package analyze decides a wave: Analyze(Observations) Decision, a pure function with no
// clock, no cluster and no network, in the style of etcd/raft's state transitions.
//
// Observations hold what one wave's soak measured: the rollout lane's scrape intervals
// (predict.Sample), the API server's SLIs per verb and scope against their SLOs, every other
// flow schema's rejections and queue waits next to their values before the rollout, the
// agents desired / Ready / started / old, and the steady points of earlier waves.
//
// The verdict is one of:
//
//   - Halt (and roll back) — at any moment, without waiting for the soak to end:
//     an SLI's p99 above its SLO (over enough requests to mean something); another flow
//     rejected more, or waiting longer, than before the rollout (collateral damage); agents
//     not Ready within the allowed time; the fleet's predicted demand over budget — early when
//     even the interval's low end is over, at the soak's end when the estimate is; an update
//     whose current version alone is already over budget (baseline); data still too thin or
//     too uncertain after the longest soak.
//   - Hold (keep soaking): agents still starting; soak not done; too few steady samples; a
//     95% interval that straddles the budget; an update without a baseline to separate the
//     versions' costs.
//   - Proceed: the soak is done, on enough samples, and the interval's high end fits.
//
// Every Decision carries a Headline in words ("wave 1: 2 agents use 1.8 seats steady; 200
// agents would need 180 seats (95%: 173–187) against a budget of 60 — halting"), all the
// Reasons behind the verdict, Notes (for example that the lane throttled the agents), the
// measurement, the fitted cost, the prediction, and MaxNextWave: how many agents the next
// wave may switch at once with its start-up burst inside the budget.
package analyze
