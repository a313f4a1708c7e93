package watch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"
)

// ConnectionState is how the API server answers the watch's requests, in a word that changes
// only when something an operator should hear about changes.
type ConnectionState string

const (
	Unknown     ConnectionState = ""
	Connected   ConnectionState = "connected"
	Refused     ConnectionState = "connection refused"
	TimedOut    ConnectionState = "no answer in time"
	Unreachable ConnectionState = "unreachable"
	TLSFailure  ConnectionState = "TLS failure"
	Denied      ConnectionState = "credentials or RBAC refused"
	Overloaded  ConnectionState = "overloaded (429)"
	ServerError ConnectionState = "server error"
)

// ConnectionChange is one change of state: what it became, why, and what it was before and for
// how long.
type ConnectionChange struct {
	State ConnectionState
	// Cause is the error or status behind a state other than Connected.
	Cause    string
	Previous ConnectionState
	// Lasted is how long Previous held (0 when Previous is Unknown).
	Lasted time.Duration
}

// Connection follows the connection to the API server from every request the watch makes and
// reports changes only: one report when it breaks, with the cause, one when it recovers, not one
// per retry. It sees what the informers do not report: client-go's watch-list retries refused
// connections quietly, so without it an outage would go unlogged.
type Connection struct {
	onChange func(ConnectionChange)
	now      func() time.Time

	mu    sync.Mutex
	state ConnectionState
	since time.Time
}

// NewConnection reports every change to onChange (called without locks held, in order).
func NewConnection(onChange func(ConnectionChange)) *Connection {
	return &Connection{onChange: onChange, now: time.Now}
}

// Wrap observes every request through rt (for rest.Config.Wrap).
func (c *Connection) Wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if req.Context().Err() == nil { // a request we cancelled says nothing about the server
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			c.Observe(Classify(err, status))
		}
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// ObserveError records a failure the informers reported (a failed list or watch); nil records a
// success.
func (c *Connection) ObserveError(err error) {
	if err == nil {
		c.Observe(Connected, "")
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	state, cause := Classify(err, 0)
	c.Observe(state, cause)
}

// Observe records one outcome and reports it when the state changed.
func (c *Connection) Observe(state ConnectionState, cause string) {
	c.mu.Lock()
	if state == c.state {
		c.mu.Unlock()
		return
	}
	now := c.now()
	change := ConnectionChange{State: state, Cause: cause, Previous: c.state}
	if c.state != Unknown {
		change.Lasted = now.Sub(c.since)
	}
	c.state, c.since = state, now
	// Report under the lock so that changes arrive in the order they happened.
	if c.onChange != nil {
		c.onChange(change)
	}
	c.mu.Unlock()
}

// Classify turns a request's outcome (a transport error, or an HTTP status) into a state and
// its cause in words.
func Classify(err error, status int) (ConnectionState, string) {
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err // the URL is the same for every retry; the cause is what differs
		}
		var netErr net.Error
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return Refused, err.Error()
		case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
			return TimedOut, err.Error()
		case isTLS(err):
			return TLSFailure, err.Error()
		}
		return Unreachable, err.Error()
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return Denied, fmt.Sprintf("HTTP %d %s", status, http.StatusText(status))
	case status == http.StatusTooManyRequests:
		return Overloaded, "HTTP 429: API Priority and Fairness rejected the request"
	case status >= 500:
		return ServerError, fmt.Sprintf("HTTP %d %s", status, http.StatusText(status))
	}
	return Connected, ""
}

func isTLS(err error) bool {
	var (
		header    tls.RecordHeaderError
		verify    *tls.CertificateVerificationError
		authority x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
	)
	return errors.As(err, &header) || errors.As(err, &verify) || errors.As(err, &authority) || errors.As(err, &hostname) || errors.As(err, &invalid)
}
