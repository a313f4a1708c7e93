package watch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"
	"testing"
	"time"
)

func TestClassifyNamesTheCause(t *testing.T) {
	refused := &url.Error{Op: "Get", URL: "https://10.0.0.1:6443/api", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	tests := []struct {
		name   string
		err    error
		status int
		want   ConnectionState
	}{
		{"an answer", nil, 200, Connected},
		{"gone (an expired resourceVersion) is an answer", nil, 410, Connected},
		{"refused", refused, 0, Refused},
		{"timeout", &url.Error{Op: "Get", URL: "u", Err: context.DeadlineExceeded}, 0, TimedOut},
		{"anything else on the way", errors.New("EOF"), 0, Unreachable},
		{"401", nil, 401, Denied},
		{"403", nil, 403, Denied},
		{"APF rejects", nil, 429, Overloaded},
		{"503 while starting", nil, 503, ServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, cause := Classify(tt.err, tt.status)
			if got != tt.want {
				t.Fatalf("Classify = %q (%s), want %q", got, cause, tt.want)
			}
			if got != Connected && cause == "" {
				t.Fatal("no cause for a failure")
			}
		})
	}
	if _, cause := Classify(refused, 0); cause != "dial tcp: connection refused" {
		t.Errorf("the cause keeps the URL, which is the same on every retry: %q", cause)
	}
}

func TestConnectionReportsEachChangeOnceNotEachRetry(t *testing.T) {
	var changes []ConnectionChange
	c := NewConnection(func(ch ConnectionChange) { changes = append(changes, ch) })
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

	c.ObserveError(nil) // first sync
	for range 50 {      // the watch retries for two minutes
		c.ObserveError(refused)
		now = now.Add(2 * time.Second)
	}
	c.Observe(Classify(nil, 200))
	c.Observe(Classify(nil, 200))
	c.ObserveError(fmt.Errorf("shutting down: %w", context.Canceled))

	want := []ConnectionChange{
		{State: Connected},
		{State: Refused, Cause: "dial tcp: connection refused", Previous: Connected},
		{State: Connected, Previous: Refused, Lasted: 100 * time.Second},
	}
	if fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Fatalf("changes:\n%v\nwant:\n%v", changes, want)
	}
}
