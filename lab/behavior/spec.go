package behavior

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Annotation is the pod annotation that carries a behaviour.
const Annotation = "lab.bulkhead.dev/behavior"

// Verb is an API action the emulator performs.
type Verb string

const (
	VerbList   Verb = "list"
	VerbWatch  Verb = "watch"
	VerbGet    Verb = "get"
	VerbCreate Verb = "create"
	VerbUpdate Verb = "update"
	VerbPatch  Verb = "patch"
	VerbDelete Verb = "delete"
)

// writes reports whether v changes objects.
func (v Verb) writes() bool {
	return v == VerbCreate || v == VerbUpdate || v == VerbPatch || v == VerbDelete
}

// targetsObject reports whether v names one object: resource/namespace/name or resource/name.
func (v Verb) targetsObject() bool { return v == VerbGet || v == VerbUpdate || v == VerbPatch }

// Templates are the resources create can make: each has a small built-in object (see template.go).
var Templates = []string{"pods", "configmaps"}

// maxBurst bounds burst for the same reason minEvery bounds every.
const maxBurst = 100

// defaultJitter spreads each interval uniformly over ±10% so that agents drift apart the way
// real ones do, while keeping the mean rate exactly 1/Every.
const defaultJitter = 0.1

// minEvery stops a typo (every: 1ms) from turning the emulator into a load generator for itself.
const minEvery = 50 * time.Millisecond

// Action is one line of a behaviour.
type Action struct {
	Verb     Verb
	Resource string // plural resource name, optionally qualified: "pods", "leases.coordination.k8s.io"
	// Namespace scopes list and watch ("" = all namespaces), names the object of a get, update
	// or patch, and is where create makes objects and delete removes them.
	Namespace       string
	Name            string // get, update and patch only
	LabelSelector   string
	FieldSelector   string
	ResourceVersion string
	HasRV           bool // ResourceVersion was given (an empty string is a meaningful value)
	Limit           int64
	Every           time.Duration
	Jitter          float64
	Once            bool
	// Burst is how many requests each occurrence makes, one after another (default 1).
	Burst int
}

// rawAction is the YAML shape of an action; exactly one verb (List ... Delete) is set.
type rawAction struct {
	List            *string `json:"list,omitempty"`
	Watch           *string `json:"watch,omitempty"`
	Get             *string `json:"get,omitempty"`
	Create          *string `json:"create,omitempty"`
	Update          *string `json:"update,omitempty"`
	Patch           *string `json:"patch,omitempty"`
	Delete          *string `json:"delete,omitempty"`
	Namespace       string  `json:"namespace,omitempty"`
	LabelSelector   string  `json:"labelSelector,omitempty"`
	FieldSelector   string  `json:"fieldSelector,omitempty"`
	ResourceVersion *string `json:"resourceVersion,omitempty"`
	Limit           int64   `json:"limit,omitempty"`
	Every           string  `json:"every,omitempty"`
	Jitter          string  `json:"jitter,omitempty"`
	Once            bool    `json:"once,omitempty"`
	Burst           *int    `json:"burst,omitempty"`
}

// Parse reads a behaviour annotation. Errors name the action (1-based) and the field at fault.
func Parse(text string) ([]Action, error) {
	if strings.TrimSpace(text) == "" {
		return nil, errors.New("behavior is empty")
	}
	var raws []rawAction
	if err := yaml.UnmarshalStrict([]byte(text), &raws); err != nil {
		return nil, fmt.Errorf("behavior is not a YAML list of actions: %w", err)
	}
	if len(raws) == 0 {
		return nil, errors.New("behavior has no actions")
	}
	actions := make([]Action, 0, len(raws))
	for i, raw := range raws {
		a, err := raw.action()
		if err != nil {
			return nil, fmt.Errorf("action %d: %w", i+1, err)
		}
		actions = append(actions, a)
	}
	if err := checkDeletes(actions); err != nil {
		return nil, err
	}
	return actions, nil
}

// checkDeletes makes sure every delete has a create to delete from: the emulator deletes only
// objects the same pod created, never anyone else's.
func checkDeletes(actions []Action) error {
	for i, d := range actions {
		if d.Verb != VerbDelete {
			continue
		}
		found := false
		for _, c := range actions {
			found = found || (c.Verb == VerbCreate && c.Resource == d.Resource && c.Namespace == d.Namespace)
		}
		if !found {
			return fmt.Errorf("action %d: delete: %s in namespace %q deletes what a create of this behaviour made, and there is none: add a create: %s with namespace: %s",
				i+1, d.Resource, d.Namespace, d.Resource, d.Namespace)
		}
	}
	return nil
}

func (r rawAction) action() (Action, error) {
	var a Action
	set := 0
	for _, v := range []struct {
		verb   Verb
		target *string
	}{{VerbList, r.List}, {VerbWatch, r.Watch}, {VerbGet, r.Get}, {VerbCreate, r.Create}, {VerbUpdate, r.Update}, {VerbPatch, r.Patch}, {VerbDelete, r.Delete}} {
		if v.target != nil {
			set++
			a.Verb = v.verb
			a.Resource = strings.TrimSpace(*v.target)
		}
	}
	if set != 1 {
		return a, errors.New("needs exactly one of list, watch, get, create, update, patch or delete")
	}
	if a.Resource == "" {
		return a, fmt.Errorf("%s needs a resource", a.Verb)
	}
	a.Namespace, a.LabelSelector, a.FieldSelector = r.Namespace, r.LabelSelector, r.FieldSelector
	if r.ResourceVersion != nil {
		a.ResourceVersion, a.HasRV = *r.ResourceVersion, true
	}
	a.Once = r.Once

	if a.Verb.targetsObject() {
		if err := a.splitTarget(); err != nil {
			return a, err
		}
		if r.Namespace != "" || r.LabelSelector != "" || r.FieldSelector != "" || r.Limit != 0 {
			return a, fmt.Errorf("%s takes resource/namespace/name (or resource/name) and no namespace, selectors or limit", a.Verb)
		}
	} else if strings.Contains(a.Resource, "/") {
		return a, fmt.Errorf("%s takes a resource name such as pods, not %q", a.Verb, a.Resource)
	}
	if a.Verb.writes() {
		if r.LabelSelector != "" || r.FieldSelector != "" || r.ResourceVersion != nil {
			return a, fmt.Errorf("%s takes no labelSelector, fieldSelector or resourceVersion", a.Verb)
		}
	}
	if a.Verb == VerbCreate || a.Verb == VerbDelete {
		if a.Verb == VerbCreate && !slices.Contains(Templates, a.Resource) {
			return a, fmt.Errorf("create: no built-in template for %q; create makes %s", a.Resource, strings.Join(Templates, " or "))
		}
		if a.Namespace == "" {
			return a, fmt.Errorf("%s: %s needs a namespace", a.Verb, a.Resource)
		}
	}

	if r.Limit < 0 {
		return a, fmt.Errorf("limit must be positive, got %d", r.Limit)
	}
	if r.Limit > 0 && a.Verb != VerbList {
		return a, errors.New("limit applies to list only")
	}
	a.Limit = r.Limit

	switch {
	case a.Verb == VerbWatch:
		if r.Every != "" || r.Once {
			return a, errors.New("watch runs continuously and takes neither every nor once")
		}
	case r.Once && r.Every != "":
		return a, errors.New("once and every exclude each other")
	case !r.Once && r.Every == "":
		return a, fmt.Errorf("%s needs every (e.g. every: 10s) or once: true", a.Verb)
	case r.Every != "":
		every, err := time.ParseDuration(r.Every)
		if err != nil {
			return a, fmt.Errorf("every: %w", err)
		}
		if every < minEvery {
			return a, fmt.Errorf("every must be at least %s, got %s", minEvery, every)
		}
		a.Every = every
	}

	a.Burst = 1
	if r.Burst != nil {
		if a.Verb == VerbWatch {
			return a, errors.New("burst applies to actions with every or once, not watch")
		}
		if *r.Burst < 1 || *r.Burst > maxBurst {
			return a, fmt.Errorf("burst must be between 1 and %d, got %d", maxBurst, *r.Burst)
		}
		a.Burst = *r.Burst
	}

	a.Jitter = defaultJitter
	if r.Jitter != "" {
		if a.Every == 0 {
			return a, errors.New("jitter applies to actions with every")
		}
		j, err := parseFraction(r.Jitter)
		if err != nil {
			return a, fmt.Errorf("jitter: %w", err)
		}
		a.Jitter = j
	}
	return a, nil
}

// splitTarget turns "configmaps/kube-system/x" or "nodes/node-1" into resource, namespace, name.
func (a *Action) splitTarget() error {
	target := a.Resource
	parts := strings.Split(target, "/")
	switch len(parts) {
	case 2:
		a.Resource, a.Name = parts[0], parts[1]
	case 3:
		a.Resource, a.Namespace, a.Name = parts[0], parts[1], parts[2]
	default:
		return fmt.Errorf("%s target %q must be resource/namespace/name or resource/name", a.Verb, a.Resource)
	}
	for _, p := range parts {
		if p == "" {
			return fmt.Errorf("%s target %q has an empty part", a.Verb, target)
		}
	}
	return nil
}

// parseFraction reads "10%" or "0.1" as a fraction in [0, 1).
func parseFraction(s string) (float64, error) {
	s = strings.TrimSpace(s)
	scale := 1.0
	if strings.HasSuffix(s, "%") {
		s, scale = strings.TrimSuffix(s, "%"), 0.01
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a fraction or percentage", s)
	}
	f *= scale
	if f < 0 || f >= 1 {
		return 0, fmt.Errorf("must be in [0%%, 100%%), got %v", f)
	}
	return f, nil
}

// Vars are the per-pod values substituted for $(NODE_NAME), $(POD_NAME) and $(POD_NAMESPACE).
type Vars struct {
	NodeName     string
	PodName      string
	PodNamespace string
}

// Expand substitutes the pod's variables into every string field of the actions.
func Expand(actions []Action, v Vars) []Action {
	r := strings.NewReplacer("$(NODE_NAME)", v.NodeName, "$(POD_NAME)", v.PodName, "$(POD_NAMESPACE)", v.PodNamespace)
	out := make([]Action, len(actions))
	for i, a := range actions {
		a.Namespace = r.Replace(a.Namespace)
		a.Name = r.Replace(a.Name)
		a.LabelSelector = r.Replace(a.LabelSelector)
		a.FieldSelector = r.Replace(a.FieldSelector)
		out[i] = a
	}
	return out
}
