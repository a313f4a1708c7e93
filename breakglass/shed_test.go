package breakglass

import (
	"strings"
	"testing"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/bulkhead-dev/bulkhead/apf"
)

func TestParseIdentityAcceptsEachFormAndNamesTheProblemOtherwise(t *testing.T) {
	tests := []struct {
		name    string
		flags   IdentityFlags
		want    apf.Subject
		wantErr string
	}{
		{"service account", IdentityFlags{ServiceAccount: "obs/agent"}, apf.ServiceAccount("obs", "agent"), ""},
		{"service account as its user name", IdentityFlags{ServiceAccount: "system:serviceaccount:obs:agent"}, apf.ServiceAccount("obs", "agent"), ""},
		{"a user that is a service account", IdentityFlags{User: "system:serviceaccount:kube-system:coredns"}, apf.ServiceAccount("kube-system", "coredns"), ""},
		{"user", IdentityFlags{User: "alice@example.com"}, apf.User("alice@example.com"), ""},
		{"group", IdentityFlags{Group: "telemetry"}, apf.Group("telemetry"), ""},
		{"nothing", IdentityFlags{}, apf.Subject{}, "name exactly one identity"},
		{"two", IdentityFlags{User: "a", Group: "b"}, apf.Subject{}, "(got 2)"},
		{"service account without namespace", IdentityFlags{ServiceAccount: "agent"}, apf.Subject{}, `service account "agent": want namespace/name`},
		{"service account with extra part", IdentityFlags{ServiceAccount: "a/b/c"}, apf.Subject{}, "want namespace/name"},
		{"bad service account user", IdentityFlags{User: "system:serviceaccount:obs"}, apf.Subject{}, "want system:serviceaccount:namespace:name"},
		{"upper-case namespace", IdentityFlags{ServiceAccount: "Obs/agent"}, apf.Subject{}, `namespace "Obs" is invalid`},
		{"user with a space", IdentityFlags{User: "alice smith"}, apf.Subject{}, "contains whitespace"},
		{"group with a newline", IdentityFlags{Group: "ops\n"}, apf.Subject{}, "contains whitespace or control characters"},
		{"-n completes a name", IdentityFlags{ServiceAccount: "agent", Namespace: "obs"}, apf.ServiceAccount("obs", "agent"), ""},
		{"-n agrees", IdentityFlags{ServiceAccount: "obs/agent", Namespace: "obs"}, apf.ServiceAccount("obs", "agent"), ""},
		{"-n disagrees", IdentityFlags{ServiceAccount: "obs/agent", Namespace: "other"}, apf.Subject{}, `is in namespace "obs", but -n asks for "other"`},
		{"-n disagrees with a user name", IdentityFlags{User: "system:serviceaccount:obs:agent", Namespace: "other"}, apf.Subject{}, "but -n asks for"},
		{"-n for a user", IdentityFlags{User: "alice", Namespace: "obs"}, apf.Subject{}, "-n has no meaning for a user"},
		{"-n for a group", IdentityFlags{Group: "ops", Namespace: "obs"}, apf.Subject{}, "-n has no meaning for a group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIdentity(tt.flags)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseIdentity = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestGuardRefusesControlPlaneAndBulkheadIdentities(t *testing.T) {
	tests := []struct {
		id          apf.Subject
		wantReason  string // "" means allowed
		hard        bool
		ineffective bool
	}{
		{apf.Group("system:masters"), "last-resort admin group", true, false},
		{apf.Group("system:nodes"), "every kubelet", true, false},
		{apf.User("system:node:node-0001"), "is a kubelet", true, false},
		{apf.ServiceAccount("kube-system", "coredns"), "kube-system service accounts", true, false},
		{apf.Group("system:serviceaccounts:kube-system"), "kube-system service accounts", true, false},
		{apf.Group("system:authenticated"), "whole cluster would be jailed", true, false},
		{apf.Group("system:serviceaccounts"), "controller-manager's and scheduler's service accounts", true, false},
		{apf.Group("*"), "every group", true, false},
		{apf.User("*"), "every user", true, false},
		{apf.User("system:kube-scheduler"), "Kubernetes components", true, false},
		{apf.Group("system:bootstrappers"), "reserved for Kubernetes components", true, false},
		{apf.ServiceAccount(Namespace, ServiceAccountName), "bulkhead itself", false, true},
		{apf.Group("system:serviceaccounts:bulkhead"), "bulkhead's own service account", false, false},
		{apf.Group("sre"), "operators' group", false, true},
		{apf.ServiceAccount("obs", "agent"), "", false, false},
		{apf.Group("system:serviceaccounts:obs"), "", false, false},
		{apf.User("alice"), "", false, false},
		{apf.ServiceAccount(Namespace, "other"), "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			p := Guard(tt.id, "sre")
			if tt.wantReason == "" {
				if p.Reason != "" {
					t.Fatalf("refused with %q, want allowed", p.Reason)
				}
				return
			}
			if !strings.Contains(p.Reason, tt.wantReason) {
				t.Fatalf("reason = %q, want one containing %q", p.Reason, tt.wantReason)
			}
			if p.Hard != tt.hard {
				t.Fatalf("hard = %v, want %v", p.Hard, tt.hard)
			}
			if (p.Ineffective != "") != tt.ineffective {
				t.Fatalf("ineffective = %q, want set: %v", p.Ineffective, tt.ineffective)
			}
			// --force lifts soft rails, never hard ones.
			if err := p.Err(tt.id, true); (err != nil) != tt.hard {
				t.Fatalf("with --force: %v; want refused only when hard", err)
			}
			if err := p.Err(tt.id, false); err == nil {
				t.Fatal("refused identity passed without --force")
			}
		})
	}
}

func TestGuardWithoutBreakGlassInstalledProtectsNoGroupByName(t *testing.T) {
	if p := Guard(apf.Group(""), ""); p.Reason != "" {
		t.Fatalf("an empty operators group protected the empty group: %q", p.Reason)
	}
	if p := Guard(apf.Group("sre"), ""); p.Reason != "" {
		t.Fatalf("sre refused without an installed lane: %q", p.Reason)
	}
}

func TestParseShedValidatesModeTTLAndReason(t *testing.T) {
	sa := IdentityFlags{ServiceAccount: "obs/agent"}
	tests := []struct {
		name     string
		flags    ShedFlags
		wantMode Mode
		wantErr  string
	}{
		{"reject by default", ShedFlags{Identity: sa, TTL: time.Minute}, Mode{Reject: true}, ""},
		{"explicit reject", ShedFlags{Identity: sa, Reject: true, TTL: time.Minute}, Mode{Reject: true}, ""},
		{"limit", ShedFlags{Identity: sa, Limit: 2, LimitGiven: true, TTL: time.Minute}, Mode{Shares: 2}, ""},
		{"both", ShedFlags{Identity: sa, Reject: true, Limit: 2, LimitGiven: true, TTL: time.Minute}, Mode{}, "exclude each other"},
		{"limit zero", ShedFlags{Identity: sa, Limit: 0, LimitGiven: true, TTL: time.Minute}, Mode{}, "--limit 0: want 1..10"},
		{"limit too large", ShedFlags{Identity: sa, Limit: 11, LimitGiven: true, TTL: time.Minute}, Mode{}, "--limit 11"},
		{"zero ttl", ShedFlags{Identity: sa}, Mode{}, "--ttl 0s: a shed needs a positive lifetime"},
		{"negative ttl", ShedFlags{Identity: sa, TTL: -time.Minute}, Mode{}, "--ttl -1m0s"},
		{"ttl beyond a week", ShedFlags{Identity: sa, TTL: 8 * 24 * time.Hour}, Mode{}, "at most 168h0m0s"},
		{"long reason", ShedFlags{Identity: sa, TTL: time.Minute, Reason: strings.Repeat("x", 2000)}, Mode{}, "--reason is 2000 bytes"},
		{"bad identity first", ShedFlags{Identity: IdentityFlags{ServiceAccount: "x"}, TTL: -1}, Mode{}, "want namespace/name"},
		{"a hard rail, offline", ShedFlags{Identity: IdentityFlags{Group: "system:authenticated"}, TTL: time.Minute}, Mode{}, "whole cluster"},
		{"a hard rail, even forced", ShedFlags{Identity: IdentityFlags{Group: "system:masters"}, TTL: time.Minute, Force: true}, Mode{}, "--force does not lift"},
		{"a soft rail", ShedFlags{Identity: IdentityFlags{ServiceAccount: "bulkhead/bulkhead"}, TTL: time.Minute}, Mode{}, "(--force overrides)"},
		{"a soft rail, forced", ShedFlags{Identity: IdentityFlags{ServiceAccount: "bulkhead/bulkhead"}, TTL: time.Minute, Force: true}, Mode{Reject: true}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := ParseShed(tt.flags)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.Mode != tt.wantMode {
				t.Fatalf("mode = %+v, want %+v", req.Mode, tt.wantMode)
			}
		})
	}
}

func TestShedNamesAreValidDistinctAndStable(t *testing.T) {
	ids := []apf.Subject{
		apf.ServiceAccount("obs", "agent"),
		apf.ServiceAccount("obs", "agent.v2"),
		apf.ServiceAccount("obsagent", "x"),
		apf.User("alice"),
		apf.User("Alice"),
		apf.User("alice@example.com"),
		apf.User("alice-example-com"),
		apf.User("@@@"),
		apf.User(strings.Repeat("long-", 100)),
		apf.Group("alice"),
		apf.Group("team:sre"),
	}
	seen := map[string]apf.Subject{}
	for _, id := range ids {
		name := ShedName(id)
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			t.Errorf("%s → %q is not a valid object name: %v", id, name, errs)
		}
		if other, dup := seen[name]; dup {
			t.Errorf("%s and %s share the name %q", id, other, name)
		}
		seen[name] = id
		if ShedName(id) != name {
			t.Errorf("%s: name not stable", id)
		}
	}
	if got := ShedName(apf.ServiceAccount("obs", "agent")); got != "bulkhead-shed-sa-obs.agent" {
		t.Errorf("service account name = %q, want the readable bulkhead-shed-sa-obs.agent", got)
	}
	if got := ShedName(apf.User("alice")); got != "bulkhead-shed-user-alice" {
		t.Errorf("plain user name = %q, want bulkhead-shed-user-alice", got)
	}
}

func TestShedObjectsBuildAJailAndRecordWhoWhyWhenUntil(t *testing.T) {
	now := time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC)
	req := ShedRequest{Identity: apf.ServiceAccount("culprit", "agent"), Mode: Mode{Reject: true}, TTL: 30 * time.Minute, Reason: "LISTs all pods"}
	level, schema, err := ShedObjects(req, "alice", now)
	if err != nil {
		t.Fatal(err)
	}
	lim := level.Spec.Limited
	if level.Spec.Type != flowcontrolv1.PriorityLevelEnablementLimited || *lim.NominalConcurrencyShares != 0 ||
		*lim.LendablePercent != 0 || lim.BorrowingLimitPercent == nil || *lim.BorrowingLimitPercent != 0 ||
		lim.LimitResponse.Type != flowcontrolv1.LimitResponseTypeReject {
		t.Fatalf("reject jail = %+v; want Limited, 0 shares, no lending, no borrowing, Reject", lim)
	}
	if schema.Spec.MatchingPrecedence != ShedPrecedence || schema.Spec.PriorityLevelConfiguration.Name != level.Name || schema.Name != level.Name {
		t.Fatalf("schema %s → %s at %d", schema.Name, schema.Spec.PriorityLevelConfiguration.Name, schema.Spec.MatchingPrecedence)
	}
	if ShedPrecedence >= apf.PrecedenceRolloutLane || ShedPrecedence >= 9000 || ShedPrecedence <= LanePrecedence {
		t.Fatalf("shed precedence %d must beat rollout lanes (%d) and service-accounts (9000) and lose to the lane (%d)",
			ShedPrecedence, apf.PrecedenceRolloutLane, LanePrecedence)
	}
	subj := schema.Spec.Rules[0].Subjects[0]
	if subj.ServiceAccount == nil || subj.ServiceAccount.Namespace != "culprit" || subj.ServiceAccount.Name != "agent" {
		t.Fatalf("subject = %+v", subj)
	}
	got := ShedFromSchema(schema)
	want := Shed{Name: "bulkhead-shed-sa-culprit.agent", Identity: "serviceaccount culprit/agent", Mode: "reject", By: "alice",
		Reason: "LISTs all pods", At: now, Expires: now.Add(30 * time.Minute)}
	if got != want {
		t.Fatalf("read back %+v\nwant %+v", got, want)
	}
	if schema.Labels[apf.PurposeLabel] != "shed" || level.Labels[apf.PurposeLabel] != "shed" {
		t.Fatalf("ownership labels missing: %v %v", schema.Labels, level.Labels)
	}
}

func TestShedObjectsWithALimitQueueInOneQueue(t *testing.T) {
	level, schema, err := ShedObjects(ShedRequest{Identity: apf.Group("telemetry"), Mode: Mode{Shares: 2}, TTL: time.Hour}, "bob", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	lim := level.Spec.Limited
	if *lim.NominalConcurrencyShares != 2 || lim.LimitResponse.Type != flowcontrolv1.LimitResponseTypeQueue ||
		lim.LimitResponse.Queuing.Queues != 1 || *lim.BorrowingLimitPercent != 0 {
		t.Fatalf("limit jail = %+v", lim)
	}
	if ShedFromSchema(schema).Mode != "limit 2" {
		t.Fatalf("mode annotation = %q", schema.Annotations[ShedModeAnnotation])
	}
	if _, ok := schema.Annotations[ShedForceAnnotation]; ok || ShedFromSchema(schema).Forced {
		t.Fatal("an unforced shed is marked forced")
	}
}

// A forced shed says so on its FlowSchema: the API server's policy lets it past the soft rails,
// and shed list shows it.
func TestAForcedShedIsMarkedForTheServerAndTheList(t *testing.T) {
	_, schema, err := ShedObjects(ShedRequest{Identity: apf.Group("sre"), Mode: Mode{Reject: true}, TTL: time.Hour, Force: true}, "bob", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if schema.Annotations[ShedForceAnnotation] != "true" || !ShedFromSchema(schema).Forced {
		t.Fatalf("annotations %v", schema.Annotations)
	}
}

func TestExpiry(t *testing.T) {
	at := time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC)
	s := Shed{Expires: at}
	if s.Expired(at.Add(-time.Second)) {
		t.Error("expired a second early")
	}
	if !s.Expired(at) || !s.Expired(at.Add(time.Hour)) {
		t.Error("not expired at or after its expiry")
	}
	if (Shed{Expires: at, Invalid: "bad"}).Expired(at.Add(time.Hour)) {
		t.Error("a shed bulkhead cannot read must not expire on its own")
	}
}

func TestShedFromSchemaNamesBrokenAnnotations(t *testing.T) {
	fs := &flowcontrolv1.FlowSchema{}
	fs.Name = "bulkhead-shed-user-x"
	fs.Annotations = map[string]string{ShedModeAnnotation: "gentle", ShedAtAnnotation: "yesterday", ShedExpiresAnnotation: "2026-11-25T04:00:00Z"}
	s := ShedFromSchema(fs)
	for _, want := range []string{`shed mode "gentle"`, `bulkhead.dev/shed-at "yesterday"`} {
		if !strings.Contains(s.Invalid, want) {
			t.Errorf("Invalid = %q, want it to name %q", s.Invalid, want)
		}
	}
}

func TestSortShedsSoonestExpiryFirst(t *testing.T) {
	at := time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC)
	sheds := []Shed{{Name: "c", Expires: at.Add(time.Hour)}, {Name: "b", Expires: at}, {Name: "a", Expires: at}}
	SortSheds(sheds)
	if sheds[0].Name != "a" || sheds[1].Name != "b" || sheds[2].Name != "c" {
		t.Fatalf("order = %s %s %s", sheds[0].Name, sheds[1].Name, sheds[2].Name)
	}
}
