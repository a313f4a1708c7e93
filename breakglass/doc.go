// Package breakglass keeps a way into an overloaded cluster open and gives operators one command
// to stop a culprit at the API server's front door.
//
// # Model
//
// API Priority and Fairness (APF) decides, per request, which priority level's seats it waits
// for: the FlowSchema with the lowest matchingPrecedence whose subjects match wins. bulkhead adds
// two kinds of FlowSchema around the defaults (exempt 1, nodes 400–500, service-accounts 9000):
//
//	precedence 50   bulkhead-break-glass  → level bulkhead-break-glass (Limited, 10 shares,
//	                                        lends nothing: its seats are always free for operators)
//	precedence 700  bulkhead-shed-<who>   → level bulkhead-shed-<who> (0 shares + Reject, or a
//	                                        few shares; neither lends nor borrows)
//
// The lane matches bulkhead's own service account (bulkhead/bulkhead) and the operators' group;
// a jail matches one culprit identity. Because 50 < 700, a shed can never catch an operator;
// because 700 is below rollout lanes (850), kube-system-service-accounts (900) and
// service-accounts (9000), a shed catches a workload wherever it would otherwise have gone.
//
// # Pieces
//
// Pure (table-tested, no network): Desired builds the install manifest, its admission policies
// included (policy.go: the rails the API server holds the break-glass identity to, whatever
// client it uses; the tests evaluate their CEL on every case); decide and the same*/merge*
// functions compare the manifest with what a cluster holds; CheckOperatorsGroup refuses groups
// whose members must not mint tokens; ParseIdentity, ParseShed and Guard validate a shed and
// apply the guard rails, hard (never) and soft (--force), before anything is sent; ShedObjects /
// ShedFromSchema write and read a shed's who/why/when/expiry annotations; Shed.Expired decides
// expiry; JailTraffic sums APF's rejected and dispatched counters of the jails, and LaneSeats the
// lane's size as the server computed it, from a controlplane.Snapshot; WriteYAML, WriteShedTable
// and ShedReport print.
//
// Edges (Kubernetes I/O): Install (get → decide → create/update or nothing, so a second run writes
// nothing; the lane's APF objects through apf's server-side apply), Uninstall (delete by ownership
// label), MintToken (TokenRequest) and RecordMint (an Event naming the minter), Dial and Config (pick
// the best route for a command: exempt admin, break-glass token, or the caller's own identity
// with the reason), ShedIdentity, Unshed, ListSheds, ReadJailTraffic (one scrape of every
// replica through controlplane) and RemoveExpiredSheds, which every bulkhead
// command that reaches the cluster should call: there is no controller, so expiry is enforced by
// the next bulkhead command.
package breakglass
