package breakglass

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"

	"github.com/bulkhead-dev/bulkhead/apf"
)

// Annotations a shed's FlowSchema carries: who jailed which identity, why, when, until when.
const (
	ShedIdentityAnnotation = "bulkhead.dev/shed-identity"
	ShedModeAnnotation     = "bulkhead.dev/shed-mode"
	ShedByAnnotation       = "bulkhead.dev/shed-by"
	ShedReasonAnnotation   = "bulkhead.dev/shed-reason"
	ShedAtAnnotation       = "bulkhead.dev/shed-at"
	ShedExpiresAnnotation  = "bulkhead.dev/shed-expires"
)

// Limits on a shed. A jail is an emergency measure: it expires within a week at most, and a
// --limit jail is small (a budget of its own is what a rollout lane is for).
const (
	DefaultShedTTL = 30 * time.Minute
	MaxShedTTL     = 7 * 24 * time.Hour
	MaxLimitShares = 10
	maxReasonBytes = 1024
	shedNamePrefix = "bulkhead-shed-"
)

// Mode is how a jail treats the identity's requests.
type Mode struct {
	// Reject answers every request 429 at once: the level has 0 shares and may not borrow.
	Reject bool
	// Shares is the level's nominalConcurrencyShares when not rejecting; it neither lends nor
	// borrows, and queues in a single queue (the jailed identity is one flow).
	Shares int32
}

func (m Mode) String() string {
	if m.Reject {
		return "reject"
	}
	return "limit " + strconv.Itoa(int(m.Shares))
}

func parseMode(s string) (Mode, error) {
	if s == "reject" {
		return Mode{Reject: true}, nil
	}
	if n, ok := strings.CutPrefix(s, "limit "); ok {
		shares, err := strconv.Atoi(n)
		if err == nil && shares >= 1 && shares <= MaxLimitShares {
			return Mode{Shares: int32(shares)}, nil
		}
	}
	return Mode{}, fmt.Errorf("shed mode %q: want reject or limit 1..%d", s, MaxLimitShares)
}

// ShedFlags are the flags of `bulkhead shed`, before validation.
type ShedFlags struct {
	Identity IdentityFlags
	Reject   bool
	Limit    int
	// LimitGiven is set when --limit was on the command line (so that --limit 0 is an error,
	// not the default).
	LimitGiven bool
	TTL        time.Duration
	Reason     string
	Force      bool
}

// ShedRequest is a validated shed.
type ShedRequest struct {
	Identity apf.Subject
	Mode     Mode
	TTL      time.Duration
	Reason   string
	Force    bool
}

// ParseShed validates the flags of a shed and applies every guard rail that needs no cluster.
// Bad input fails before bulkhead connects to anything; only the operators' group rail, which
// depends on the installed lane, waits for ShedIdentity.
func ParseShed(f ShedFlags) (ShedRequest, error) {
	id, err := ParseIdentity(f.Identity)
	if err != nil {
		return ShedRequest{}, err
	}
	if err := Guard(id, "").Err(id, f.Force); err != nil {
		return ShedRequest{}, err
	}
	req := ShedRequest{Identity: id, TTL: f.TTL, Reason: f.Reason, Force: f.Force}
	switch {
	case f.Reject && f.LimitGiven:
		return ShedRequest{}, fmt.Errorf("--reject and --limit exclude each other: reject everything, or limit to a small share")
	case f.LimitGiven && (f.Limit < 1 || f.Limit > MaxLimitShares):
		return ShedRequest{}, fmt.Errorf("--limit %d: want 1..%d shares (1 share is about 3 of 600 seats next to the default levels), or --reject", f.Limit, MaxLimitShares)
	case f.LimitGiven:
		req.Mode = Mode{Shares: int32(f.Limit)}
	default:
		req.Mode = Mode{Reject: true}
	}
	if f.TTL <= 0 {
		return ShedRequest{}, fmt.Errorf("--ttl %s: a shed needs a positive lifetime, for example --ttl 30m", f.TTL)
	}
	if f.TTL > MaxShedTTL {
		return ShedRequest{}, fmt.Errorf("--ttl %s: at most %s; shed again to extend", f.TTL, MaxShedTTL)
	}
	if len(f.Reason) > maxReasonBytes {
		return ShedRequest{}, fmt.Errorf("--reason is %d bytes; keep it under %d", len(f.Reason), maxReasonBytes)
	}
	return req, nil
}

// ShedName is the name of the FlowSchema and PriorityLevelConfiguration that jail id. It is a
// function of the identity alone, so shedding the same identity again updates the same jail.
func ShedName(id apf.Subject) string {
	switch id.Kind {
	case apf.KindServiceAccount:
		// Namespaces are DNS labels (no dots), names DNS subdomains: "ns.name" is unambiguous.
		name := shedNamePrefix + "sa-" + id.Namespace + "." + id.Name
		if len(name) <= 253 {
			return name
		}
		return shedNamePrefix + "sa-" + id.Namespace + "-" + hash(id.Namespace+"/"+id.Name)
	case apf.KindUser:
		return shedNamePrefix + "user-" + slug(id.Name)
	default:
		return shedNamePrefix + "group-" + slug(id.Name)
	}
}

// slug makes a readable DNS-safe name from any user or group name; when that loses
// information (case, punctuation, length) a hash of the original keeps names distinct.
func slug(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.TrimRight(b.String(), "-")
	const maxSlug = 200
	if s == name && len(s) <= maxSlug {
		return s
	}
	if len(s) > maxSlug {
		s = strings.TrimRight(s[:maxSlug], "-")
	}
	if s == "" {
		return hash(name)
	}
	return s + "-" + hash(name)
}

func hash(s string) string {
	h := fnv.New32a()
	h.Write([]byte(s))
	return fmt.Sprintf("%08x", h.Sum32())
}

// Shed is a jail as recorded in its FlowSchema's annotations.
type Shed struct {
	Name     string    `json:"name"`
	Identity string    `json:"identity"` // in words, e.g. "serviceaccount culprit/agent"
	Mode     string    `json:"mode"`
	By       string    `json:"by,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at,omitzero"`
	Expires  time.Time `json:"expires,omitzero"`
	// Forced: the shed crossed a soft guard rail (bulkhead shed --force).
	Forced bool `json:"forced,omitempty"`
	// Invalid says what is wrong with the annotations of a shed bulkhead cannot read; such a
	// shed never expires on its own and is left for unshed.
	Invalid string `json:"invalid,omitempty"`
}

// Expired reports whether the shed's lifetime is over at now.
func (s Shed) Expired(now time.Time) bool {
	return s.Invalid == "" && !now.Before(s.Expires)
}

// ShedObjects builds the jail for req: a level and a FlowSchema named ShedName, the schema's
// annotations recording by, the reason, now and the expiry.
func ShedObjects(req ShedRequest, by string, now time.Time) (*flowcontrolv1.PriorityLevelConfiguration, *flowcontrolv1.FlowSchema, error) {
	name := ShedName(req.Identity)
	own := apf.Ownership{Purpose: apf.PurposeShed, Owner: req.Identity.String()}
	noBorrowing := int32(0)
	spec := apf.LevelSpec{Name: name, LendablePercent: 0, BorrowingLimitPercent: &noBorrowing}
	if req.Mode.Reject {
		spec.Reject = true
	} else {
		spec.Shares = req.Mode.Shares
		spec.Queuing = apf.Queuing{Queues: 1, HandSize: 1, QueueLengthLimit: 50}
	}
	level, err := apf.PriorityLevel(spec, own)
	if err != nil {
		return nil, nil, fmt.Errorf("jail level: %w", err)
	}
	own.Annotations = map[string]string{
		ShedIdentityAnnotation: req.Identity.String(),
		ShedModeAnnotation:     req.Mode.String(),
		ShedByAnnotation:       by,
		ShedReasonAnnotation:   req.Reason,
		ShedAtAnnotation:       now.UTC().Format(time.RFC3339),
		ShedExpiresAnnotation:  now.Add(req.TTL).UTC().Format(time.RFC3339),
	}
	if req.Force {
		own.Annotations[ShedForceAnnotation] = "true"
	}
	schema, err := apf.FlowSchema(apf.SchemaSpec{Name: name, Level: name, Precedence: ShedPrecedence, Subjects: []apf.Subject{req.Identity}}, own)
	if err != nil {
		return nil, nil, fmt.Errorf("jail flow schema: %w", err)
	}
	return level, schema, nil
}

// ShedFromSchema reads a shed back from its FlowSchema.
func ShedFromSchema(fs *flowcontrolv1.FlowSchema) Shed {
	a := fs.Annotations
	s := Shed{Name: fs.Name, Identity: a[ShedIdentityAnnotation], Mode: a[ShedModeAnnotation], By: a[ShedByAnnotation], Reason: a[ShedReasonAnnotation],
		Forced: a[ShedForceAnnotation] == "true"}
	var problems []string
	if _, err := parseMode(s.Mode); err != nil {
		problems = append(problems, err.Error())
	}
	for _, field := range []struct {
		key string
		to  *time.Time
	}{{ShedAtAnnotation, &s.At}, {ShedExpiresAnnotation, &s.Expires}} {
		t, err := time.Parse(time.RFC3339, a[field.key])
		if err != nil {
			problems = append(problems, fmt.Sprintf("annotation %s %q is not an RFC 3339 time", field.key, a[field.key]))
			continue
		}
		*field.to = t
	}
	s.Invalid = strings.Join(problems, "; ")
	return s
}

// SortSheds orders sheds by expiry, soonest first, then by name.
func SortSheds(sheds []Shed) {
	sort.Slice(sheds, func(i, j int) bool {
		if !sheds[i].Expires.Equal(sheds[j].Expires) {
			return sheds[i].Expires.Before(sheds[j].Expires)
		}
		return sheds[i].Name < sheds[j].Name
	})
}
