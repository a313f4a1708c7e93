package apf

import (
	"fmt"
	"strings"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Matching precedences of the FlowSchemas kube-apiserver installs (k8s.io/apiserver
// pkg/apis/flowcontrol/bootstrap): exempt 1, probes 2, system-leader-election 100,
// workload-leader-election 200, system-node-high 400, system-nodes 500,
// kube-controller-manager and kube-scheduler 800, kube-system-service-accounts 900,
// service-accounts 9000, global-default 9900, catch-all 10000. Lowest number wins.
const (
	// PrecedenceRolloutLane beats service-accounts (9000) and kube-system-service-accounts
	// (900), so a lane captures a DaemonSet's service account even in kube-system, while the
	// system's own schemas (nodes, leader election, controllers) keep precedence.
	PrecedenceRolloutLane int32 = 850

	minPrecedence = 2 // 1 is reserved for the mandatory "exempt" schema
	maxPrecedence = 10000
)

// SubjectKind names the three kinds of identity a FlowSchema can match.
type SubjectKind string

const (
	KindServiceAccount SubjectKind = "ServiceAccount"
	KindUser           SubjectKind = "User"
	KindGroup          SubjectKind = "Group"
)

// Subject is one identity a FlowSchema matches.
type Subject struct {
	Kind      SubjectKind
	Namespace string // ServiceAccount only
	Name      string
}

func ServiceAccount(namespace, name string) Subject {
	return Subject{Kind: KindServiceAccount, Namespace: namespace, Name: name}
}
func User(name string) Subject  { return Subject{Kind: KindUser, Name: name} }
func Group(name string) Subject { return Subject{Kind: KindGroup, Name: name} }

// ParseServiceAccount reads "namespace/name".
func ParseServiceAccount(s string) (Subject, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return Subject{}, fmt.Errorf("service account %q: want namespace/name", s)
	}
	sa := ServiceAccount(ns, name)
	if err := sa.validate(); err != nil {
		return Subject{}, err
	}
	return sa, nil
}

// Username is the name the API server authenticates this subject as (for users and service
// accounts); groups have none.
func (s Subject) Username() string {
	switch s.Kind {
	case KindServiceAccount:
		return "system:serviceaccount:" + s.Namespace + ":" + s.Name
	case KindUser:
		return s.Name
	}
	return ""
}

func (s Subject) String() string {
	if s.Kind == KindServiceAccount {
		return "serviceaccount " + s.Namespace + "/" + s.Name
	}
	return strings.ToLower(string(s.Kind)) + " " + s.Name
}

func (s Subject) validate() error {
	switch s.Kind {
	case KindServiceAccount:
		if errs := validation.IsDNS1123Label(s.Namespace); len(errs) > 0 {
			return fmt.Errorf("service account namespace %q is invalid: %s", s.Namespace, strings.Join(errs, "; "))
		}
		if errs := validation.IsDNS1123Subdomain(s.Name); len(errs) > 0 {
			return fmt.Errorf("service account name %q is invalid: %s", s.Name, strings.Join(errs, "; "))
		}
	case KindUser, KindGroup:
		if s.Name == "" {
			return fmt.Errorf("%s name must not be empty", strings.ToLower(string(s.Kind)))
		}
	default:
		return fmt.Errorf("subject kind %q is not one of ServiceAccount, User, Group", s.Kind)
	}
	return nil
}

func (s Subject) api() flowcontrolv1.Subject {
	switch s.Kind {
	case KindServiceAccount:
		return flowcontrolv1.Subject{Kind: flowcontrolv1.SubjectKindServiceAccount,
			ServiceAccount: &flowcontrolv1.ServiceAccountSubject{Namespace: s.Namespace, Name: s.Name}}
	case KindUser:
		return flowcontrolv1.Subject{Kind: flowcontrolv1.SubjectKindUser, User: &flowcontrolv1.UserSubject{Name: s.Name}}
	default:
		return flowcontrolv1.Subject{Kind: flowcontrolv1.SubjectKindGroup, Group: &flowcontrolv1.GroupSubject{Name: s.Name}}
	}
}

// SchemaSpec describes a FlowSchema that sends every request of its subjects (all verbs, all
// resources in every namespace and at cluster scope, all non-resource URLs) to one level.
type SchemaSpec struct {
	Name       string
	Level      string
	Precedence int32
	Subjects   []Subject
	// ByUser gives each user its own flow (fair queuing between them); false puts all matched
	// requests in one flow, which is what a single-identity lane wants.
	ByUser bool
}

// FlowSchema builds the FlowSchema, or says what is wrong with spec.
func FlowSchema(spec SchemaSpec, own Ownership) (*flowcontrolv1.FlowSchema, error) {
	if err := validateName(spec.Name); err != nil {
		return nil, fmt.Errorf("flow schema: %w", err)
	}
	if err := validateName(spec.Level); err != nil {
		return nil, fmt.Errorf("flow schema %q: priority level: %w", spec.Name, err)
	}
	if spec.Precedence < minPrecedence || spec.Precedence > maxPrecedence {
		return nil, fmt.Errorf("flow schema %q: matchingPrecedence %d must be within %d..%d (1 belongs to the exempt schema)",
			spec.Name, spec.Precedence, minPrecedence, maxPrecedence)
	}
	if len(spec.Subjects) == 0 {
		return nil, fmt.Errorf("flow schema %q: needs at least one subject", spec.Name)
	}
	subjects := make([]flowcontrolv1.Subject, 0, len(spec.Subjects))
	for _, s := range spec.Subjects {
		if err := s.validate(); err != nil {
			return nil, fmt.Errorf("flow schema %q: %w", spec.Name, err)
		}
		subjects = append(subjects, s.api())
	}
	fs := &flowcontrolv1.FlowSchema{
		TypeMeta:   typeMeta("FlowSchema"),
		ObjectMeta: own.objectMeta(spec.Name),
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: spec.Level},
			MatchingPrecedence:         spec.Precedence,
			Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
				Subjects: subjects,
				ResourceRules: []flowcontrolv1.ResourcePolicyRule{{
					Verbs:        []string{flowcontrolv1.VerbAll},
					APIGroups:    []string{flowcontrolv1.APIGroupAll},
					Resources:    []string{flowcontrolv1.ResourceAll},
					ClusterScope: true,
					Namespaces:   []string{flowcontrolv1.NamespaceEvery},
				}},
				NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{{
					Verbs:           []string{flowcontrolv1.VerbAll},
					NonResourceURLs: []string{flowcontrolv1.NonResourceAll},
				}},
			}},
		},
	}
	if spec.ByUser {
		fs.Spec.DistinguisherMethod = &flowcontrolv1.FlowDistinguisherMethod{Type: flowcontrolv1.FlowDistinguisherMethodByUserType}
	}
	return fs, nil
}
