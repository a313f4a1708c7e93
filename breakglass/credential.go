package breakglass

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Token lifetimes. The API server refuses TokenRequests shorter than 10 minutes; a day is
// plenty for an incident and short enough that a leaked kubeconfig soon stops working.
const (
	MinTokenTTL     = 10 * time.Minute
	MaxTokenTTL     = 24 * time.Hour
	DefaultTokenTTL = time.Hour
	// commandTokenTTL is the lifetime of the token a bulkhead command mints for itself.
	commandTokenTTL = MinTokenTTL
)

// CheckTokenTTL validates --ttl of `breakglass kubeconfig`.
func CheckTokenTTL(ttl time.Duration) error {
	if ttl < MinTokenTTL || ttl > MaxTokenTTL {
		return fmt.Errorf("--ttl %s: want %s to %s (the API server's minimum is 10 minutes)", ttl, MinTokenTTL, MaxTokenTTL)
	}
	return nil
}

// ErrNotInstalled means the break-glass service account does not exist.
var ErrNotInstalled = errors.New("break-glass is not installed (run bulkhead install)")

// Token is a minted break-glass token and what the API server says about it.
type Token struct {
	Value   string
	Expires time.Time
	// Audiences are the token's: the TokenRequest asks for none, so the API server gives its
	// own, and only the API server (not a service that reviews tokens for an audience of its
	// own) accepts the token.
	Audiences []string
	// CredentialID is the token's JWT ID as the API server records it: its audit log carries
	// it on the TokenRequest and, as user extra authentication.kubernetes.io/credential-id, on
	// every request made with the token. "" when the server's tokens carry none.
	CredentialID string
}

// MintToken asks the API server, as c's identity, for a token of bulkhead's service account.
func MintToken(ctx context.Context, c kubernetes.Interface, ttl time.Duration) (Token, error) {
	seconds := int64(ttl / time.Second)
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &seconds}}
	resp, err := c.CoreV1().ServiceAccounts(Namespace).CreateToken(ctx, ServiceAccountName, req, metav1.CreateOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return Token{}, ErrNotInstalled
	case apierrors.IsForbidden(err):
		// RBAC answers before the object is looked up: to a non-admin, "not installed" looks
		// the same as "not allowed".
		return Token{}, fmt.Errorf("cannot mint break-glass tokens: break-glass is not installed (bulkhead install), "+
			"or you are not in its operators' group (install lets that group create serviceaccounts/token on %s/%s): %w",
			Namespace, ServiceAccountName, err)
	case err != nil:
		return Token{}, fmt.Errorf("mint a token for %s/%s: %w", Namespace, ServiceAccountName, err)
	}
	return Token{Value: resp.Status.Token, Expires: resp.Status.ExpirationTimestamp.Time, Audiences: resp.Spec.Audiences,
		CredentialID: credentialID(resp.Status.Token)}, nil
}

// credentialID reads the jti claim of a service account token. The token came from the API
// server over TLS: it is read, not verified.
func credentialID(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		ID string `json:"jti"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	return claims.ID
}

// MintReason is the Event reason that records a minted break-glass token.
const MintReason = "BreakGlassTokenMinted"

// RecordMint writes an Event on the break-glass service account saying who minted tok and for
// what, through c (the token's own client, so the record travels the lane). The API server
// records the same minting in its audit log, with the minter, whatever client was used
// (TokenPolicyName's audit annotation); this Event is what `kubectl describe serviceaccount` shows.
func RecordMint(ctx context.Context, c kubernetes.Interface, by, purpose string, tok Token) error {
	if by == "" {
		by = "someone (SelfSubjectReview failed)"
	}
	msg := fmt.Sprintf("%s minted a break-glass token for %s, valid until %s", by, purpose, tok.Expires.UTC().Format(time.RFC3339))
	if tok.CredentialID != "" {
		msg += ", credential JTI=" + tok.CredentialID
	}
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: ServiceAccountName + ".", Namespace: Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "ServiceAccount", APIVersion: "v1", Namespace: Namespace, Name: ServiceAccountName},
		Reason:         MintReason, Message: msg, Type: corev1.EventTypeNormal,
		Source:         corev1.EventSource{Component: "bulkhead"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "bulkhead.dev/breakglass", ReportingInstance: "bulkhead",
	}
	if _, err := c.CoreV1().Events(Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("record the minted token (Event on %s/%s): %w", Namespace, ServiceAccountName, err)
	}
	return nil
}

// TokenConfig is base with its identity replaced by token: same server and TLS trust, no client
// certificate, exec plugin or impersonation.
func TokenConfig(base *rest.Config, token string) *rest.Config {
	cfg := rest.AnonymousClientConfig(base)
	cfg.BearerToken = token
	return cfg
}

// Kubeconfig is a self-contained kubeconfig for token against base's server: the CA is
// embedded, so the file works on any machine.
func Kubeconfig(base *rest.Config, token string) (*clientcmdapi.Config, error) {
	ca := base.CAData
	if len(ca) == 0 && base.CAFile != "" {
		data, err := os.ReadFile(base.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read the cluster CA %s: %w", base.CAFile, err)
		}
		ca = data
	}
	const name = "bulkhead-break-glass"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: base.Host, CertificateAuthorityData: ca,
		TLSServerName: base.ServerName, InsecureSkipTLSVerify: base.Insecure}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	cfg.CurrentContext = name
	return cfg, nil
}

// Lane names the way a command's requests reach the API server.
type Lane string

const (
	// LaneBreakGlass: a token of bulkhead's service account, matched by the break-glass schema.
	LaneBreakGlass Lane = "break-glass"
	// LaneExempt: the caller is in system:masters, which APF exempts; that is better still.
	LaneExempt Lane = "exempt"
	// LaneOwn: the caller's own identity, wherever APF puts it (break-glass unavailable).
	LaneOwn Lane = "own"
)

// Identity is who the API server says the caller is.
type Identity struct {
	User   string
	Groups []string
}

// Route is the outcome of Dial: the config to use and, in words, why.
type Route struct {
	Config *rest.Config
	Lane   Lane
	// Caller is the identity of base, from a SelfSubjectReview; empty when that failed.
	Caller Identity
	// Note is one sentence for the user about the lane and, for LaneOwn, why.
	Note string
	// Err is why break-glass is installed but unusable (LaneOwn only; nil when not installed).
	Err error
}

// Protected reports whether the route's requests skip the queues of ordinary workloads.
func (r Route) Protected() bool { return r.Lane != LaneOwn }

// whoamiTimeout and mintTimeout bound the two requests Dial makes with the caller's own
// identity, which may be stuck in an overloaded priority level.
const (
	whoamiTimeout = 5 * time.Second
	mintTimeout   = 10 * time.Second
)

// Dial finds the best way to the API server for a bulkhead command run with base: the caller's
// own identity when it is exempt from APF (system:masters), else a short-lived break-glass token,
// else — when break-glass is not installed or the caller may not mint — the caller's own
// identity, with a note saying why. It never fails: a command must still try to help.
func Dial(ctx context.Context, base *rest.Config) Route {
	client, err := kubernetes.NewForConfig(base)
	if err != nil {
		return Route{Config: base, Lane: LaneOwn, Err: err, Note: fmt.Sprintf("NOT using the break-glass lane: %v", err)}
	}
	whoCtx, cancel := context.WithTimeout(ctx, whoamiTimeout)
	caller, whoErr := Whoami(whoCtx, client)
	cancel()
	switch {
	case whoErr == nil && slices.Contains(caller.Groups, "system:masters"):
		return Route{Config: base, Lane: LaneExempt, Caller: caller,
			Note: fmt.Sprintf("using your own credentials (%s, system:masters: exempt from API Priority and Fairness)", caller.User)}
	case whoErr == nil && caller.User == username:
		// A break-glass kubeconfig: already in the lane (and it may not mint tokens).
		return Route{Config: base, Lane: LaneBreakGlass, Caller: caller,
			Note: fmt.Sprintf("using the break-glass lane: these credentials are %s/%s's own", Namespace, ServiceAccountName)}
	}
	mintCtx, cancel := context.WithTimeout(ctx, mintTimeout)
	token, err := MintToken(mintCtx, client, commandTokenTTL)
	cancel()
	if err != nil {
		r := Route{Config: base, Lane: LaneOwn, Caller: caller,
			Note: fmt.Sprintf("NOT using the break-glass lane, your requests may queue behind an overload: %v", err)}
		if !errors.Is(err, ErrNotInstalled) {
			r.Err = err
		}
		return r
	}
	cfg := TokenConfig(base, token.Value)
	r := Route{Config: cfg, Lane: LaneBreakGlass, Caller: caller,
		Note: fmt.Sprintf("using the break-glass lane as %s/%s (token valid until %s)", Namespace, ServiceAccountName, token.Expires.UTC().Format(time.RFC3339))}
	if tokenClient, err := kubernetes.NewForConfig(cfg); err == nil {
		recordCtx, cancel := context.WithTimeout(ctx, mintTimeout)
		err = RecordMint(recordCtx, tokenClient, caller.User, "a bulkhead command ("+commandTokenTTL.String()+")", token)
		cancel()
		if err != nil {
			r.Note += "; " + err.Error()
		}
	}
	return r
}

// Config is Dial for other bulkhead packages (rollout uses it for rollbacks): the config, and
// whether its requests are protected from the queues of ordinary workloads. err says why they
// are not when break-glass is installed but could not be used; it is nil when break-glass is
// simply not installed. The config is always usable.
func Config(ctx context.Context, base *rest.Config) (*rest.Config, bool, error) {
	r := Dial(ctx, base)
	return r.Config, r.Protected(), r.Err
}

// Whoami asks the API server who the client is (SelfSubjectReview, allowed to every
// authenticated identity).
func Whoami(ctx context.Context, c kubernetes.Interface) (Identity, error) {
	r, err := c.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return Identity{}, fmt.Errorf("who am I (SelfSubjectReview): %w", err)
	}
	return Identity{User: r.Status.UserInfo.Username, Groups: r.Status.UserInfo.Groups}, nil
}
