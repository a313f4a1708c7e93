package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"

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
		Long: `install creates namespace bulkhead, its service account (the break-glass identity), a
least-privilege ClusterRole, a PriorityLevelConfiguration that holds seats for operators and lends none,
and a FlowSchema at precedence 50 that sends bulkhead and --operators-group there. Members of that
group may mint break-glass tokens (bulkhead breakglass kubeconfig). Running it again changes nothing.
--dry-run prints the objects as YAML and touches nothing. Run it with cluster-admin rights.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			client, err := ownClient(cmd, kube)
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
			cfg, err := kube.ToRESTConfig()
			if err != nil {
				return fmt.Errorf("kubeconfig: %w", err)
			}
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
break-glass or shed: the lane, the RBAC, namespace bulkhead and every shed. Rollout lanes belong to
running rollouts and are kept (and named). It waits for the namespace to be gone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if waitFor <= 0 {
				return fmt.Errorf("--wait must be positive, got %s", waitFor)
			}
			client, err := ownClient(cmd, kube)
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
func ownClient(cmd *cobra.Command, kube *genericclioptions.ConfigFlags) (kubernetes.Interface, error) {
	cfg, err := kube.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
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

// removeExpired enforces shed expiry, as every bulkhead command that reaches the cluster does.
// Failing to is reported, not fatal: the command still has its own job to do.
func removeExpired(cmd *cobra.Command, client kubernetes.Interface) {
	removed, _, err := breakglass.RemoveExpiredSheds(commandContext(cmd), client.FlowcontrolV1(), time.Now())
	if err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: expired sheds not checked: %v\n", err)
	}
	for _, s := range removed {
		fmt.Fprintf(cmd.ErrOrStderr(), "removed expired shed %s (%s, expired %s)\n", s.Name, s.Identity, s.Expires.UTC().Format(time.RFC3339))
	}
}
