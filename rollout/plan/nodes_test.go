package plan

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
)

func zonedNodes(perZone map[string]int) []Node {
	var nodes []Node
	for zone, n := range perZone {
		for i := range n {
			nodes = append(nodes, Node{Name: fmt.Sprintf("node-%s-%03d", zone, i), Labels: map[string]string{ZoneLabel: zone}})
		}
	}
	return nodes
}

func zoneCounts(nodes []Node, names []string) map[string]int {
	zoneOf := map[string]string{}
	for _, n := range nodes {
		zoneOf[n.Name] = n.Labels[ZoneLabel]
	}
	counts := map[string]int{}
	for _, name := range names {
		counts[zoneOf[name]]++
	}
	return counts
}

func TestOrderIsAPermutationIndependentOfInputOrder(t *testing.T) {
	nodes := zonedNodes(map[string]int{"a": 30, "b": 30, "c": 40})
	order := Order(nodes, "obs/agent", []string{ZoneLabel})
	if len(order) != len(nodes) {
		t.Fatalf("order has %d nodes, want %d", len(order), len(nodes))
	}
	sorted := slices.Clone(order)
	slices.Sort(sorted)
	if len(slices.Compact(sorted)) != len(nodes) {
		t.Fatalf("order repeats nodes")
	}
	reversed := slices.Clone(nodes)
	slices.Reverse(reversed)
	if again := Order(reversed, "obs/agent", []string{ZoneLabel}); !reflect.DeepEqual(again, order) {
		t.Fatalf("order depends on the order nodes were listed in")
	}
}

func TestOrderSpreadsEveryPrefixAcrossZonesInProportion(t *testing.T) {
	perZone := map[string]int{"a": 50, "b": 100, "c": 50}
	nodes := zonedNodes(perZone)
	order := Order(nodes, "obs/agent", []string{ZoneLabel})
	for _, k := range []int{1, 2, 4, 10, 50, 120, 200} {
		counts := zoneCounts(nodes, order[:k])
		for zone, size := range perZone {
			fair := float64(k) * float64(size) / 200
			if got := float64(counts[zone]); got < fair-1 || got > fair+1 {
				t.Fatalf("first %d nodes: zone %s has %v, fair share %.1f (counts %v)", k, zone, got, fair, counts)
			}
		}
	}
	if counts := zoneCounts(nodes, order[:4]); len(counts) != 3 {
		t.Fatalf("a wave of 4 nodes over 3 zones touches %d zones: %v", len(counts), counts)
	}
}

func TestOrderWithoutZonesStillSpreadsNothingAndIsStable(t *testing.T) {
	nodes := []Node{{Name: "n1"}, {Name: "n2"}, {Name: "n3"}, {Name: "n4"}}
	a := Order(nodes, "obs/agent", []string{ZoneLabel})
	b := Order(nodes, "obs/agent", []string{ZoneLabel})
	if !reflect.DeepEqual(a, b) || len(a) != 4 {
		t.Fatalf("orders differ or are incomplete: %v vs %v", a, b)
	}
}

func TestOrderDependsOnTheRolloutIdentity(t *testing.T) {
	nodes := zonedNodes(map[string]int{"a": 100})
	a := Order(nodes, "obs/agent", nil)
	b := Order(nodes, "obs/other-agent", nil)
	if reflect.DeepEqual(a[:5], b[:5]) {
		t.Fatalf("two DaemonSets start on the same five nodes %v; the hash should vary with identity", a[:5])
	}
}

func TestOrderKeepsRelativeOrderWhenANodeLeaves(t *testing.T) {
	nodes := zonedNodes(map[string]int{"a": 20})
	before := Order(nodes, "obs/agent", []string{ZoneLabel})
	gone := before[3]
	after := Order(slices.DeleteFunc(slices.Clone(nodes), func(n Node) bool { return n.Name == gone }), "obs/agent", []string{ZoneLabel})
	want := slices.DeleteFunc(slices.Clone(before), func(s string) bool { return s == gone })
	if !reflect.DeepEqual(after, want) {
		t.Fatalf("removing %s reshuffled the order:\n%v\n%v", gone, after, want)
	}
}

func TestNextWave(t *testing.T) {
	order := []string{"n1", "n2", "n3", "n4", "n5"}
	tests := []struct {
		name   string
		done   []string
		target int
		want   []string
	}{
		{"first wave", nil, 2, []string{"n1", "n2"}},
		{"second wave continues", []string{"n1", "n2"}, 4, []string{"n3", "n4"}},
		{"resume after a partial wave picks only what is missing", []string{"n1", "n2", "n3"}, 4, []string{"n4"}},
		{"already at target", []string{"n1", "n2"}, 2, nil},
		{"a done node that left the fleet does not count", []string{"gone", "n1"}, 2, []string{"n2"}},
		{"done out of order (a node joined) fills the gap", []string{"n1", "n3"}, 3, []string{"n2"}},
		{"target above the fleet takes all", nil, 9, order},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := map[string]bool{}
			for _, d := range tt.done {
				done[d] = true
			}
			if got := NextWave(order, done, tt.target); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("NextWave = %v, want %v", got, tt.want)
			}
		})
	}
}
