// Package rbacdoc reads the RBAC tables of bulkhead's READMEs so that tests can hold the
// documentation to the roles it describes: a README that grants less (or more) on paper than the
// manifest does in the cluster misleads the people who review bulkhead's rights.
//
// A table documents the role named on the closest line above it, as "ClusterRole `name`" or
// "Role `name`", with the columns | API group | resources | verbs | why |:
//
//	| `apps` | daemonsets | get, list, patch | ... |
//	| core | serviceaccounts/token (`bulkhead` only) | create | ... |
//	| non-resource URL | `/metrics` | get | ... |
package rbacdoc

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
)

var roleLine = regexp.MustCompile("(ClusterRole|Role) `([^`]+)`")

// nonResource is the API group cell of a row about non-resource URLs.
const nonResource = "non-resource URL"

// Tables returns every RBAC table of a markdown document as expanded rows (see Expand), keyed
// by "ClusterRole name" or "Role name".
func Tables(md string) (map[string][]string, error) {
	out := map[string][]string{}
	role := ""
	inTable := false
	for i, line := range strings.Split(md, "\n") {
		trimmed := strings.TrimSpace(line)
		if !strings.HasPrefix(trimmed, "|") {
			inTable = false
			if m := roleLine.FindAllStringSubmatch(trimmed, -1); len(m) > 0 {
				role = m[len(m)-1][1] + " " + m[len(m)-1][2]
			}
			continue
		}
		cells := strings.Split(strings.Trim(trimmed, "|"), "|")
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		if !inTable {
			inTable = true
			if len(cells) < 3 || !strings.EqualFold(cells[0], "API group") {
				role = "" // another kind of table
			}
			continue
		}
		if role == "" || strings.HasPrefix(cells[0], "---") {
			continue
		}
		rows, err := expandRow(cells)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		out[role] = append(out[role], rows...)
	}
	for k := range out {
		slices.Sort(out[k])
	}
	return out, nil
}

func expandRow(cells []string) ([]string, error) {
	if len(cells) < 3 {
		return nil, fmt.Errorf("an RBAC row needs API group, resources and verbs: %q", strings.Join(cells, " | "))
	}
	group := strings.Trim(cells[0], "`")
	if group == "core" {
		group = ""
	}
	var rule rbacv1.PolicyRule
	verbs := list(cells[2])
	for _, res := range splitOutside(cells[1]) {
		name, names, _ := strings.Cut(res, "(")
		name = strings.Trim(strings.TrimSpace(name), "`")
		if group == nonResource {
			rule.NonResourceURLs = append(rule.NonResourceURLs, name)
			continue
		}
		rule.Resources = append(rule.Resources, name)
		for _, n := range list(strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(names), ")"), "only")) {
			rule.ResourceNames = append(rule.ResourceNames, n)
		}
	}
	if group != nonResource {
		rule.APIGroups = []string{group}
	}
	rule.Verbs = verbs
	return Expand([]rbacv1.PolicyRule{rule}), nil
}

// splitOutside splits at commas that are not inside parentheses.
func splitOutside(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

func list(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.Trim(strings.TrimSpace(v), "`"); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// Expand turns rules into one sorted row per grant: "group resource[name] verb", or
// "url verb" for a non-resource URL.
func Expand(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		for _, v := range r.Verbs {
			for _, u := range r.NonResourceURLs {
				out = append(out, u+" "+v)
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					if len(r.ResourceNames) == 0 {
						out = append(out, fmt.Sprintf("%s %s %s", groupName(g), res, v))
					}
					for _, n := range r.ResourceNames {
						out = append(out, fmt.Sprintf("%s %s[%s] %s", groupName(g), res, n, v))
					}
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func groupName(g string) string {
	if g == "" {
		return "core"
	}
	return g
}

// Diff lists, in words, every way the documented tables differ from the granted roles (both
// keyed as Tables keys them): a role granted more or less than its table says, a role without a
// table, a table of a role that does not exist.
func Diff(documented, granted map[string][]string) []string {
	var out []string
	for _, role := range sortedKeys(granted) {
		doc, ok := documented[role]
		switch {
		case !ok:
			out = append(out, role+" is not documented")
		case !slices.Equal(doc, granted[role]):
			out = append(out, fmt.Sprintf("%s: the table says\n  %s\nthe role grants\n  %s", role, strings.Join(doc, "\n  "), strings.Join(granted[role], "\n  ")))
		}
	}
	for _, role := range sortedKeys(documented) {
		if _, ok := granted[role]; !ok {
			out = append(out, "a table documents "+role+", which does not exist")
		}
	}
	return out
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
