package cli

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/bulkhead-dev/bulkhead/breakglass"
)

func newInstallCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	var (
		dryRun          bool
		opts            breakglass.InstallOptions
		withController  bool
		controllerImage string
	)
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install bulkhead's break-glass lane, identity and RBAC (idempotent)",
		Long: `install creates namespace bulkhead (Pod Security "restricted"), its service account (the
break-glass identity), a least-privilege ClusterRole, two ValidatingAdmissionPolicies that hold that
identity, in the API server, to what a rollback and a shed need (and cap its tokens at 24h), a
PriorityLevelConfiguration that holds seats for operators and lends none, and a FlowSchema at
precedence 50 that sends bulkhead and --operators-group there. Members of that group may mint
break-glass tokens (bulkhead breakglass kubeconfig). Running it again changes nothing. --dry-run
prints the objects as YAML and touches nothing. With --controller it also installs bulkhead
controller (its CRDs, admission policies, RBAC and Deployment). Run it with cluster-admin rights.

Manual: ` + ManualURL + `#install`,
		Example: `  bulkhead install --operators-group sre-oncall
  bulkhead install --dry-run > break-glass.yaml   # review, or apply with kubectl
  bulkhead install --controller                   # and bulkhead controller, in the cluster`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("controller-image") && !withController {
				return fmt.Errorf("--controller-image has no meaning without --controller")
			}
			if withController && controllerImage == "" {
				return fmt.Errorf("--controller-image: an image is required")
			}
			manifest, err := breakglass.Desired(opts)
			if err != nil {
				return err
			}
			if dryRun {
				if err := breakglass.WriteYAML(cmd.OutOrStdout(), manifest.Objects()); err != nil || !withController {
					return err
				}
				return writeControllerManifests(cmd.OutOrStdout(), controllerImage)
			}
			cfg, err := clusterConfig(kube)
			if err != nil {
				return err
			}
			client, err := ownClient(cmd, cfg)
			if err != nil {
				return err
			}
			removeExpired(cmd, client)
			changes, err := breakglass.Install(commandContext(cmd), client, manifest)
			for _, c := range changes {
				fmt.Fprintln(cmd.OutOrStdout(), c)
			}
			if err != nil {
				return fmt.Errorf("install: %w", err)
			}
			if err := breakglass.WaitForRails(commandContext(cmd), cfg, 15*time.Second); err != nil {
				return fmt.Errorf("install: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rails in force: the API server refuses what policy %s forbids the break-glass identity (checked by a dry run)\n", breakglass.PolicyName)
			if withController {
				if err := installController(cmd, cfg, controllerImage); err != nil {
					return err
				}
			}
			lane, total, err := breakglass.ReadLaneSeats(commandContext(cmd), cfg, 5*time.Second)
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: lane size not confirmed: %v\n", err)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "break-glass lane: %.0f of %.0f seats per kube-apiserver, lent to no one\n", lane, total)
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the objects as YAML; change nothing")
	cmd.Flags().BoolVar(&withController, "controller", false, "also install bulkhead controller: the RolloutPolicy CRD, the admission policies, its RBAC and Deployment")
	cmd.Flags().StringVar(&controllerImage, "controller-image", controllerDefaultImage, "image of the controller's Deployment (with --controller)")
	cmd.Flags().StringVar(&opts.OperatorsGroup, "operators-group", breakglass.DefaultOperatorsGroup,
		"group whose members use the break-glass lane and may mint break-glass tokens")
	return cmd
}

func newUninstallCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	var waitFor time.Duration
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove everything bulkhead install and bulkhead shed created",
		Long: `uninstall deletes every object labelled app.kubernetes.io/managed-by=bulkhead with purpose
break-glass or shed: the lane, the RBAC, the admission policies, namespace bulkhead (and with it the
service account, so every break-glass token stops working) and every shed. Rollout lanes belong to
running rollouts and are kept (and named). It waits for the namespace to be gone.`,
		Example: `  bulkhead uninstall
  bulkhead uninstall --wait 5m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if waitFor <= 0 {
				return fmt.Errorf("--wait must be positive, got %s", waitFor)
			}
			cfg, err := clusterConfig(kube)
			if err != nil {
				return err
			}
			client, err := ownClient(cmd, cfg)
			if err != nil {
				return err
			}
			removed, kept, err := breakglass.Uninstall(commandContext(cmd), client, waitFor)
			for _, c := range removed {
				fmt.Fprintln(cmd.OutOrStdout(), c)
			}
			if err != nil {
				return fmt.Errorf("uninstall: %w", err)
			}
			if len(removed) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "Nothing to remove.")
			}
			for _, name := range kept {
				fmt.Fprintf(cmd.ErrOrStderr(), "kept FlowSchema %s: a rollout lane in use; finish or abort its rollout\n", name)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&waitFor, "wait", 2*time.Minute, "how long to wait for namespace "+breakglass.Namespace+" to be gone")
	return cmd
}

// ownClient is the caller's own identity. install and uninstall need it: creating RBAC needs
// rights the break-glass identity does not hold.
func ownClient(cmd *cobra.Command, cfg *rest.Config) (kubernetes.Interface, error) {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	fmt.Fprintln(cmd.ErrOrStderr(), "using your own credentials: managing RBAC needs rights the break-glass identity does not hold")
	return client, nil
}

func commandContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// warnedExpired holds the root commands that already warned that expired sheds could not be
// checked: a command may reach the cluster more than once, the warning is said once.
var warnedExpired sync.Map

// removeExpired enforces shed expiry, as every bulkhead command that reaches the cluster does.
// Failing to is reported in one short line, once, not fatal: the command still has its own job
// to do, and its own errors say more.
func removeExpired(cmd *cobra.Command, client kubernetes.Interface) {
	removed, _, err := breakglass.RemoveExpiredSheds(commandContext(cmd), client.FlowcontrolV1(), time.Now())
	if err != nil {
		if _, warned := warnedExpired.LoadOrStore(cmd.Root(), true); !warned {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: expired sheds not checked: %s\n", briefly(err))
		}
	}
	for _, s := range removed {
		fmt.Fprintf(cmd.ErrOrStderr(), "removed expired shed %s (%s, expired %s)\n", s.Name, s.Identity, s.Expires.UTC().Format(time.RFC3339))
	}
}
