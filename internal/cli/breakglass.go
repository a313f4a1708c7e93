package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/bulkhead-dev/bulkhead/breakglass"
)

func newBreakGlassCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "breakglass",
		Short: "Credentials for the break-glass lane",
	}
	cmd.AddCommand(newBreakGlassKubeconfigCommand(kube))
	return cmd
}

func newBreakGlassKubeconfigCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print a short-lived kubeconfig whose requests travel the break-glass lane",
		Long: `kubeconfig mints a token (TokenRequest) for bulkhead's service account bulkhead/bulkhead, which
the break-glass FlowSchema matches, and prints a self-contained kubeconfig to stdout:

  bulkhead breakglass kubeconfig --ttl 1h > bg.kubeconfig
  kubectl --kubeconfig bg.kubeconfig get daemonsets -A

The token carries bulkhead's least-privilege role (see breakglass/README.md), expires after --ttl
and cannot be revoked early except by deleting the service account (bulkhead uninstall).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := breakglass.CheckTokenTTL(ttl); err != nil {
				return err
			}
			cfg, err := kube.ToRESTConfig()
			if err != nil {
				return fmt.Errorf("kubeconfig: %w", err)
			}
			client, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return fmt.Errorf("kubeconfig: %w", err)
			}
			token, expires, err := breakglass.MintToken(commandContext(cmd), client, ttl)
			if err != nil {
				return err
			}
			bgConfig := breakglass.TokenConfig(cfg, token)
			if bgClient, err := kubernetes.NewForConfig(bgConfig); err == nil {
				removeExpired(cmd, bgClient)
			}
			kubeconfig, err := breakglass.Kubeconfig(cfg, token)
			if err != nil {
				return err
			}
			out, err := clientcmd.Write(*kubeconfig)
			if err != nil {
				return fmt.Errorf("encode kubeconfig: %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "break-glass kubeconfig for %s/%s, valid until %s\n",
				breakglass.Namespace, breakglass.ServiceAccountName, expires.UTC().Format(time.RFC3339))
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", breakglass.DefaultTokenTTL, "lifetime of the token (10m to 24h)")
	return cmd
}
