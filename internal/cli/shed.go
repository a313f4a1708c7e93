package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"

	"github.com/bulkhead-dev/bulkhead/breakglass"
)

func newShedCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	var flags breakglass.ShedFlags
	cmd := &cobra.Command{
		Use:   "shed (--serviceaccount ns/name | --user U | --group G) [--reject | --limit N] [--ttl 30m] [--reason TEXT]",
		Short: "Jail an identity at the API server's front door: reject or throttle all its requests",
		Long: `shed creates a FlowSchema (precedence 700, ahead of rollout lanes and the service-accounts
schema) that sends every request of the identity to a jail priority level of its own: --reject (the
default) answers 429 at once; --limit N queues it behind N shares (1 share is about 3 of 600 seats).
The culprit's pods keep running; only their API calls are stopped. The shed records who, why, when and
its expiry; it is removed by bulkhead unshed, or after --ttl by the next bulkhead command.

Guard rails, checked here before anything is sent and again by the API server: the control plane's
own identities and everyone (system:masters, system:nodes and kubelets, system:authenticated,
system:serviceaccounts, kube-system service accounts, other system: users and groups) are never
shed, --force or not; bulkhead itself and the operators' group only with --force.
-n completes --serviceaccount NAME; it means nothing for --user and --group.

Manual: ` + ManualURL + `#shed`,
		Example: `  bulkhead shed --serviceaccount telemetry/agent --reason "LISTs every pod every second"
  bulkhead shed -n telemetry --serviceaccount agent --limit 2 --ttl 2h
  bulkhead shed --user ci-bot@example.com --ttl 15m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			flags.LimitGiven = cmd.Flags().Changed("limit")
			if cmd.Flags().Changed("namespace") {
				flags.Identity.Namespace = cmd.Flag("namespace").Value.String()
			}
			req, err := breakglass.ParseShed(flags)
			if err != nil {
				return err
			}
			route, client, err := dialLane(cmd, kube)
			if err != nil {
				return err
			}
			by := route.Caller.User
			if by == "" {
				by = "unknown (SelfSubjectReview failed)"
			}
			result, err := breakglass.ShedIdentity(commandContext(cmd), client.FlowcontrolV1(), req, by, time.Now())
			if err != nil {
				return err
			}
			s := result.Shed
			fmt.Fprintf(cmd.OutOrStdout(), "shed %s %s: %s → %s until %s\n", s.Name, result.Action, s.Identity, s.Mode, s.Expires.UTC().Format(time.RFC3339))
			if result.Warning != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: "+result.Warning)
			}
			return nil
		},
	}
	annotate(cmd, namespacedAnnotation)
	f := cmd.Flags()
	f.StringVar(&flags.Identity.ServiceAccount, "serviceaccount", "", "service account to shed, namespace/name (or name with -n)")
	f.StringVar(&flags.Identity.User, "user", "", "user to shed")
	f.StringVar(&flags.Identity.Group, "group", "", "group to shed")
	f.BoolVar(&flags.Reject, "reject", false, "answer every request 429 (the default)")
	f.IntVar(&flags.Limit, "limit", 0, fmt.Sprintf("instead of rejecting, queue behind N nominal concurrency shares (1..%d)", breakglass.MaxLimitShares))
	f.DurationVar(&flags.TTL, "ttl", breakglass.DefaultShedTTL, "lifetime of the shed")
	f.StringVar(&flags.Reason, "reason", "", "why, for whoever finds the shed")
	f.BoolVar(&flags.Force, "force", false, "shed bulkhead itself or the operators' group anyway (never the control plane or everyone)")
	cmd.AddCommand(newShedListCommand(kube))
	return cmd
}

func newShedListCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List sheds (removing expired ones), with what each jail rejected and admitted",
		Long: `list prints every shed with its identity, mode, expiry, who made it and why, and what each jail
rejected and admitted since each API server replica started (APF's own counters). -o json or
-o yaml prints the same for scripts: {"sheds": [...]}, with rejected and admitted when /metrics
could be read.`,
		Example: `  bulkhead shed list
  bulkhead shed list -o json | jq -r '.sheds[] | select(.rejected > 0) | .name'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			route, client, err := dialLane(cmd, kube)
			if err != nil {
				return err
			}
			sheds, err := breakglass.ListSheds(commandContext(cmd), client.FlowcontrolV1())
			if err != nil {
				return err
			}
			var traffic map[string]breakglass.Traffic
			if len(sheds) > 0 {
				names := make([]string, len(sheds))
				for i, s := range sheds {
					names[i] = s.Name
				}
				traffic, err = breakglass.ReadJailTraffic(commandContext(cmd), route.Config, names)
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: jail counters incomplete: %v\n", err)
				}
			}
			if format != formatText {
				return printStructured(cmd.OutOrStdout(), format, breakglass.ShedReport(sheds, traffic))
			}
			return breakglass.WriteShedTable(cmd.OutOrStdout(), sheds, traffic, time.Now())
		},
	}
	addOutputFlag(cmd, &format)
	return cmd
}

func newUnshedCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "unshed NAME",
		Short:   "Remove a shed (names from bulkhead shed list)",
		Example: `  bulkhead unshed bulkhead-shed-sa-telemetry.agent`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, client, err := dialLane(cmd, kube)
			if err != nil {
				return err
			}
			s, err := breakglass.Unshed(commandContext(cmd), client.FlowcontrolV1(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "unshed %s: %s no longer jailed\n", s.Name, s.Identity)
			return nil
		},
	}
}

// dialLane connects through the break-glass lane when it can, says which way it went, and
// removes expired sheds.
func dialLane(cmd *cobra.Command, kube *genericclioptions.ConfigFlags) (breakglass.Route, kubernetes.Interface, error) {
	cfg, err := clusterConfig(kube)
	if err != nil {
		return breakglass.Route{}, nil, err
	}
	route := breakglass.Dial(commandContext(cmd), cfg)
	fmt.Fprintln(cmd.ErrOrStderr(), route.Note)
	client, err := kubernetes.NewForConfig(route.Config)
	if err != nil {
		return route, nil, fmt.Errorf("client: %w", err)
	}
	removeExpired(cmd, client)
	return route, client, nil
}
