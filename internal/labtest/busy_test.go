package labtest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/bulkhead-dev/bulkhead/internal/labtest"
)

// The busy baseline's identities, as bulkhead-lab ctl stats names them (namespace/name).
var busyIdentities = []string{"busy/ci", "busy/controller", "busy/watcher", "busy/report"}

// counted sums one identity's requests and errors of one verb and resource.
func counted(st labtest.Stats, sa, verb, resource string) (requests, errors int64) {
	for _, a := range st {
		if a.ServiceAccount == sa && a.Verb == verb && a.Resource == resource {
			requests += a.Requests
			errors += a.Errors
		}
	}
	return requests, errors
}

// With --background busy the lab's other clients really load it: every identity is served
// (its RBAC allows what it does), and the CI identity's pods are created and then deleted.
func TestBusyBackgroundClientsAreServedAndCIPodsComeAndGo(t *testing.T) {
	l := labtest.New(t, labtest.Options{Nodes: 20, PodsPerNode: 5, Services: 5, Background: "busy"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// The report job runs once a minute and CI deletes only what it created: wait until every
	// identity has made requests and CI has both created and deleted a pod.
	var st labtest.Stats
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		if st, err = l.Stats(ctx); err != nil {
			return false, err
		}
		for _, sa := range busyIdentities {
			if st.Agent(sa).Requests == 0 {
				return false, nil
			}
		}
		created, createErrors := counted(st, "busy/ci", "create", "pods")
		deleted, deleteErrors := counted(st, "busy/ci", "delete", "pods")
		return created > createErrors && deleted > deleteErrors, nil
	})
	if err != nil {
		t.Fatalf("busy identities did not all make requests, or CI did not create and delete pods: %v; stats:\n%s", err, describeBusy(st))
	}

	for _, sa := range busyIdentities {
		c := st.Agent(sa)
		// At most 1% failed: an identity without the rights its behaviour needs fails every time.
		if c.Errors*100 > c.Requests {
			t.Errorf("%s: %d of %d requests failed, want at most 1%%; stats:\n%s", sa, c.Errors, c.Requests, describeBusy(st))
		}
	}
	for _, verb := range []string{"create", "delete"} {
		if requests, errors := counted(st, "busy/ci", verb, "pods"); requests-errors <= 0 {
			t.Errorf("busy/ci: %d %s pods requests, %d failed; want some served", requests, verb, errors)
		}
	}
}

// describeBusy lists the busy identities' stats with their p99 and 429s, for failure messages.
func describeBusy(st labtest.Stats) string {
	var b strings.Builder
	for _, a := range st {
		if strings.HasPrefix(a.ServiceAccount, "busy/") {
			fmt.Fprintf(&b, "  %s %s %s: %d requests, %d errors, %d rejected (429), p99 %.3fs\n",
				a.ServiceAccount, a.Verb, a.Resource, a.Requests, a.Errors, a.Rejected, a.P99)
		}
	}
	return b.String()
}
