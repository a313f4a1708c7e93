// Package plan decides which nodes get a DaemonSet's new pods, and when. It is pure: no
// cluster access, every function is a function of its arguments.
//
// A plan is three things:
//
//   - Waves (ParseWaves, Resolve): the user's --waves, such as "1%,5%,25%,100%" or
//     "2,10,50,100%", are cumulative targets ("after this wave, this many nodes run the new
//     pods"), resolved against the number of eligible nodes. Percentages round up so no wave
//     is empty; waves that land on the same count merge.
//   - Eligibility (Eligible): the nodes the DaemonSet controller would run a pod on, by the
//     controller's own rules (nodeName, nodeSelector, required node affinity, taints against
//     the template's tolerations plus the ones every daemon pod gets).
//   - Order (Order, NextWave): a deterministic order of the eligible nodes, ranked by a hash
//     of the rollout's identity and the node name within each zone (or other spread labels),
//     and interleaved across zones in proportion to their size. Wave k takes the first nodes
//     of the order not yet done. The rollout records which nodes are done, so a resumed
//     rollout, or one whose fleet gained or lost nodes, neither repeats nor skips a node.
package plan
