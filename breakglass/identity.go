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
	ServiceAccount string // namespace/name, or system:serviceaccount:namespace:name
	User           string
	Group          string
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
	switch {
	case f.ServiceAccount != "":
		if rest, ok := strings.CutPrefix(f.ServiceAccount, serviceAccountUserPrefix); ok {
			return parseServiceAccountUser(f.ServiceAccount, rest)
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
	// Ineffective is set when APF would never route the identity's requests to a jail anyway
	// (an earlier FlowSchema always matches first), so a forced shed changes nothing.
	Ineffective string
}

// Guard applies the shed guard rails. operatorsGroup is the group the installed lane matches
// ("" when break-glass is not installed).
func Guard(id apf.Subject, operatorsGroup string) Protection {
	const laneWins = "the break-glass FlowSchema (precedence 50) matches it before any shed (700)"
	switch id.Kind {
	case apf.KindServiceAccount:
		switch {
		case id.Namespace == "kube-system":
			return Protection{Reason: "kube-system service accounts run the control plane's own controllers, CoreDNS and kube-proxy; jailing one can stop the cluster from healing"}
		case id.Namespace == Namespace && id.Name == ServiceAccountName:
			return Protection{Reason: "it is bulkhead itself, the break-glass identity you recover with", Ineffective: laneWins}
		}
	case apf.KindGroup:
		if id.Name == operatorsGroup && operatorsGroup != "" {
			return Protection{Reason: "it is the break-glass operators' group", Ineffective: laneWins}
		}
		if id.Name == serviceAccountGroup {
			return Protection{Reason: "it contains bulkhead's own service account, the break-glass identity"}
		}
		if reason := protectedGroup(id.Name); reason != "" {
			p := Protection{Reason: reason}
			switch id.Name {
			case "system:masters":
				p.Ineffective = "APF's mandatory exempt FlowSchema (precedence 1) matches system:masters first"
			case "system:nodes":
				p.Ineffective = "the system-nodes and system-node-high FlowSchemas (precedence 400, 500) match kubelets first"
			}
			return p
		}
	case apf.KindUser:
		if strings.HasPrefix(id.Name, "system:node:") {
			return Protection{Reason: "it is a kubelet: jailing it stops its node heartbeats and the node lifecycle controller then evicts its pods",
				Ineffective: "the system-nodes FlowSchema (precedence 500) matches kubelets first"}
		}
		if strings.HasPrefix(id.Name, "system:") {
			return Protection{Reason: "system: users are Kubernetes components (controller-manager, scheduler, apiserver, kube-proxy)"}
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
		return name + " matches every client of that kind: the whole cluster would be jailed"
	case strings.HasPrefix(name, "system:serviceaccounts:"):
		return ""
	case strings.HasPrefix(name, "system:"):
		return "system: groups are reserved for Kubernetes components"
	}
	return ""
}
