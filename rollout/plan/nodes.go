package plan

import (
	"cmp"
	"hash/fnv"
	"slices"
	"strings"
)

// ZoneLabel is the well-known topology label waves spread across by default.
const ZoneLabel = "topology.kubernetes.io/zone"

// Node is what node choice needs to know about a node.
type Node struct {
	Name   string
	Labels map[string]string
}

// Order returns every node once, in the order waves take them. The order is a pure function of
// the node set, the rollout's identity (for example "namespace/daemonset") and the spread keys:
//
//   - Nodes are grouped by the values of spreadKeys (nodes lacking a key form their own group).
//   - Within a group, nodes are ranked by a stable hash of identity and node name, so two
//     rollouts do not both start on the same unlucky node, yet one rollout always picks alike.
//   - Groups are interleaved in proportion to their size: every prefix of the order holds each
//     group's fair share (within one node), so wave 1 touches as many zones as it can.
//
// Adding or removing a node moves only that node; the others keep their relative order.
func Order(nodes []Node, identity string, spreadKeys []string) []string {
	groups := map[string][]string{}
	for _, n := range nodes {
		key := groupKey(n.Labels, spreadKeys)
		groups[key] = append(groups[key], n.Name)
	}
	type group struct {
		key    string
		names  []string
		picked int
	}
	all := make([]*group, 0, len(groups))
	for key, names := range groups {
		slices.SortFunc(names, func(a, b string) int {
			return cmp.Or(cmp.Compare(rank(identity, a), rank(identity, b)), strings.Compare(a, b))
		})
		all = append(all, &group{key: key, names: names})
	}
	// Larger groups first, then by hash, so ties between equal groups are stable but not
	// alphabetical (zone "a" is not always first).
	slices.SortFunc(all, func(a, b *group) int {
		return cmp.Or(cmp.Compare(len(b.names), len(a.names)),
			cmp.Compare(rank(identity, a.key), rank(identity, b.key)), strings.Compare(a.key, b.key))
	})
	order := make([]string, 0, len(nodes))
	for len(order) < len(nodes) {
		// Take from the group furthest behind its share: least picked/size, compared exactly
		// as picked_a·size_b < picked_b·size_a.
		var next *group
		for _, g := range all {
			if g.picked == len(g.names) {
				continue
			}
			if next == nil || g.picked*len(next.names) < next.picked*len(g.names) {
				next = g
			}
		}
		order = append(order, next.names[next.picked])
		next.picked++
	}
	return order
}

// NextWave returns the nodes to add so that target nodes of order are done: the first nodes of
// order that are not done yet. Done nodes that left the fleet do not count toward the target,
// so a shrinking fleet still reaches its percentage. Because the choice only depends on order
// and done, a resumed rollout picks the same nodes.
func NextWave(order []string, done map[string]bool, target int) []string {
	have := 0
	for _, name := range order {
		if done[name] {
			have++
		}
	}
	var wave []string
	for _, name := range order {
		if have >= target {
			break
		}
		if !done[name] {
			wave = append(wave, name)
			have++
		}
	}
	return wave
}

func groupKey(labels map[string]string, keys []string) string {
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(0)
		}
		b.WriteString(labels[k])
	}
	return b.String()
}

func rank(identity, name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(identity))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return h.Sum64()
}
