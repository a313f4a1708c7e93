package breakglass

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/bulkhead-dev/bulkhead/apf"
)

const serviceAccountUserPrefix = "system:serviceaccount:"

// IdentityFlags are the three mutually exclusive ways to name the identity a shed applies to.
type IdentityFlags struct {
	ServiceAccount string // namespace/name, name with Namespace, or system:serviceaccount:namespace:name
	User           string
	Group          string
	// Namespace is -n when given ("" otherwise): it completes a service account given by name
	// alone and must agree with one given with its namespace; users and groups have none.
	Namespace string
}

// ParseIdentity turns the flags into one APF subject. A user named
// system:serviceaccount:<ns>:<name> is that service account, so the guard rails see it as one.
func ParseIdentity(f IdentityFlags) (apf.Subject, error) {
	given := 0
	for _, v := range []string{f.ServiceAccount, f.User, f.Group} {
		if v != "" {
			given++
		}
	}
	if given != 1 {
		return apf.Subject{}, fmt.Errorf("name exactly one identity: --serviceaccount namespace/name, --user NAME or --group NAME (got %d)", given)
	}
	id, err := parseIdentity(f)
	if err != nil || f.Namespace == "" {
		return id, err
	}
	switch {
	case id.Kind != apf.KindServiceAccount:
		return apf.Subject{}, fmt.Errorf("-n has no meaning for a %s: users and groups belong to no namespace; drop -n", strings.ToLower(string(id.Kind)))
	case id.Namespace != f.Namespace:
		return apf.Subject{}, fmt.Errorf("service account %s/%s is in namespace %q, but -n asks for %q", id.Namespace, id.Name, id.Namespace, f.Namespace)
	}
	return id, nil
}

func parseIdentity(f IdentityFlags) (apf.Subject, error) {
	switch {
	case f.ServiceAccount != "":
		if rest, ok := strings.CutPrefix(f.ServiceAccount, serviceAccountUserPrefix); ok {
			return parseServiceAccountUser(f.ServiceAccount, rest)
		}
		if f.Namespace != "" && !strings.Contains(f.ServiceAccount, "/") {
			return apf.ParseServiceAccount(f.Namespace + "/" + f.ServiceAccount)
		}
		return apf.ParseServiceAccount(f.ServiceAccount)
	case f.User != "":
		if rest, ok := strings.CutPrefix(f.User, serviceAccountUserPrefix); ok {
			return parseServiceAccountUser(f.User, rest)
		}
		if err := checkPrintable("user", f.User); err != nil {
			return apf.Subject{}, err
		}
		return apf.User(f.User), nil
	default:
		if err := checkPrintable("group", f.Group); err != nil {
			return apf.Subject{}, err
		}
		return apf.Group(f.Group), nil
	}
}

func parseServiceAccountUser(full, rest string) (apf.Subject, error) {
	ns, name, ok := strings.Cut(rest, ":")
	if !ok || strings.Contains(name, ":") {
		return apf.Subject{}, fmt.Errorf("service account user %q: want system:serviceaccount:namespace:name", full)
	}
	return apf.ParseServiceAccount(ns + "/" + name)
}

// checkPrintable refuses names that no authenticator produces and that would only ever match
// nobody: empty, padded or containing whitespace or control characters.
func checkPrintable(kind, name string) error {
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("%s name %q contains whitespace or control characters", kind, name)
		}
	}
	return nil
}

// Protection says why an identity must not be shed; an empty Reason means it may be.
type Protection struct {
	Reason string
	// Hard rails protect the control plane's own components and everyone: --force does not lift
	// them, and the API server's policy refuses them whoever asks. Soft rails (bulkhead itself,
	// the operators' group) protect the people who recover the cluster, and --force lifts them.
	Hard bool
	// Ineffective is set when APF would never route the identity's requests to a jail anyway
	// (an earlier FlowSchema always matches first), so a forced shed changes nothing.
	Ineffective string
}

// Err is the refusal to shed id, or nil when force lifts p (or p protects nothing).
func (p Protection) Err(id apf.Subject, force bool) error {
	switch {
	case p.Reason == "":
		return nil
	case p.Hard:
		return fmt.Errorf("refusing to shed %s: %s; --force does not lift this rail: jailing the control plane's components or everyone never recovers a cluster", id, p.Reason)
	case !force:
		return fmt.Errorf("refusing to shed %s: %s (--force overrides)", id, p.Reason)
	}
	return nil
}

// Guard applies the shed guard rails; the API server's policy (policy.go) applies the same ones.
// operatorsGroup is the group the installed lane matches ("" when break-glass is not installed,
// or not known yet: every other rail needs no cluster).
func Guard(id apf.Subject, operatorsGroup string) Protection {
	const laneWins = "the break-glass FlowSchema (precedence 50) matches it before any shed (700)"
	hard := func(reason string) Protection { return Protection{Reason: reason, Hard: true} }
	switch id.Kind {
	case apf.KindServiceAccount:
		switch {
		case id.Namespace == "kube-system":
			return hard("kube-system service accounts run the control plane's own controllers, CoreDNS and kube-proxy; jailing one can stop the cluster from healing")
		case id.Namespace == Namespace && id.Name == ServiceAccountName:
			return Protection{Reason: "it is bulkhead itself, the break-glass identity you recover with", Ineffective: laneWins}
		}
	case apf.KindGroup:
		switch {
		case id.Name == operatorsGroup && operatorsGroup != "":
			return Protection{Reason: "it is the break-glass operators' group", Ineffective: laneWins}
		case id.Name == serviceAccountGroup:
			return Protection{Reason: "it contains bulkhead's own service account, the break-glass identity"}
		case id.Name == "*":
			return hard("\"*\" matches every group: the whole cluster would be jailed")
		}
		if reason := protectedGroup(id.Name); reason != "" {
			return hard(reason)
		}
	case apf.KindUser:
		switch {
		case id.Name == "*":
			return hard("\"*\" matches every user: the whole cluster would be jailed")
		case strings.HasPrefix(id.Name, "system:node:"):
			return hard("it is a kubelet: jailing it stops its node heartbeats and the node lifecycle controller then evicts its pods")
		case strings.HasPrefix(id.Name, "system:"):
			return hard("system: users are Kubernetes components (controller-manager, scheduler, apiserver, kube-proxy)")
		}
	}
	return Protection{}
}

// protectedGroup explains why a group must not be jailed (or made an operators' group), or
// returns "".
func protectedGroup(name string) string {
	switch {
	case name == "system:masters":
		return "system:masters is the cluster's last-resort admin group and is exempt from APF"
	case name == "system:nodes":
		return "system:nodes holds every kubelet: jailing it stops node heartbeats and the node lifecycle controller then evicts pods cluster-wide"
	case name == "system:serviceaccounts:kube-system":
		return "it holds the kube-system service accounts that run the control plane's own controllers, CoreDNS and kube-proxy"
	case name == "system:authenticated" || name == "system:serviceaccounts" || name == "system:unauthenticated":
		return name + " matches every client of that kind, the controller-manager's and scheduler's service accounts included: the whole cluster would be jailed"
	case strings.HasPrefix(name, "system:serviceaccounts:"):
		return ""
	case strings.HasPrefix(name, "system:"):
		return "system: groups are reserved for Kubernetes components"
	}
	return ""
}
