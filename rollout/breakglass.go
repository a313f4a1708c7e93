package rollout

import (
	"context"
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/bulkhead-dev/bulkhead/breakglass"
)

// BreakGlassRollback is Deps.Rollback for a command run with base: when a rollback begins it
// picks the route of its requests with breakglass.Dial — base itself when base is exempt from
// APF (system:masters), a fresh 10-minute token of bulkhead's break-glass identity when the
// break-glass lane is installed and base may mint one, else base's own client (own) — and logs
// which. The route is chosen at rollback time, not at start, because a token outlives no
// rollout of an hour; Dial bounds its two requests (whoami, mint) to 15 s, so a struggling API
// server delays a rollback by at most that before it goes ahead on its own identity.
func BreakGlassRollback(base *rest.Config, own kubernetes.Interface, log func(string)) func(context.Context) kubernetes.Interface {
	return func(ctx context.Context) kubernetes.Interface {
		route := breakglass.Dial(ctx, base)
		if route.Lane != breakglass.LaneBreakGlass {
			say(log, "rollback: "+route.Note)
			return own
		}
		cfg := rest.CopyConfig(route.Config)
		cfg.UserAgent = base.UserAgent
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			say(log, fmt.Sprintf("rollback: NOT using the break-glass lane, its client failed: %v", err))
			return own
		}
		say(log, "rollback: "+route.Note)
		return client
	}
}

func say(log func(string), line string) {
	if log != nil {
		log(line)
	}
}
