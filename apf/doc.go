// Package apf is the one place in bulkhead that knows the shape of API Priority and Fairness
// (flowcontrol.apiserver.k8s.io/v1). Rollout lanes, the break-glass lane and shed jails are all
// built here, so every bulkhead-owned FlowSchema and PriorityLevelConfiguration carries the same
// ownership labels and follows the same sizing rules.
//
// The model, as implemented by kube-apiserver (k8s.io/apiserver/pkg/util/flowcontrol,
// apf_controller.go, and the API documentation of LimitedPriorityLevelConfiguration):
//
//   - The server's concurrency limit, ServerCL, is max-requests-inflight +
//     max-mutating-requests-inflight (400 + 200 = 600 seats by default).
//   - Every priority level, Exempt ones included, declares nominalConcurrencyShares (NCS).
//     NominalCL(i) = ceil(ServerCL × NCS(i) / Σ NCS). Adding a level therefore shrinks every
//     other level a little; SharesForSeats accounts for that.
//   - LendableCL(i) = round(NominalCL(i) × lendablePercent / 100) can be borrowed by others;
//     BorrowingCL(i) = round(NominalCL(i) × borrowingLimitPercent / 100) may be borrowed from
//     others (nil means unlimited). A lane with lendablePercent 0 and borrowingLimitPercent 0
//     holds exactly its NominalCL, no more and no less.
//   - A FlowSchema maps requests (subjects × rules) to a level; the matching FlowSchema with the
//     lowest matchingPrecedence wins.
//
// Builders (PriorityLevel, ExemptLevel, FlowSchema) are pure and validate their input. Apply and
// Delete, the only functions that talk to a cluster, are idempotent and refuse to touch objects
// bulkhead does not own.
package apf
