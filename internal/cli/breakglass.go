package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/bulkhead-dev/bulkhead/breakglass"
)

func newBreakGlassCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "breakglass",
		Short:   "Credentials for the break-glass lane",
		Example: `  bulkhead breakglass kubeconfig --ttl 1h > bg.kubeconfig`,
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
the break-glass FlowSchema matches, and prints a self-contained kubeconfig to stdout. The token
carries the API server's own audience, expires after --ttl (at most 24h: the API server refuses
longer ones) and cannot be revoked early except by deleting the service account (bulkhead
uninstall). Who minted it is recorded in an Event on the service account and, when the API server
keeps an audit log, there too.

The token may do what a rollback and a shed need, and the API server holds it to that whatever
client uses it: change DaemonSets under a bulkhead rollout, remove rollout gate labels from nodes,
delete a guarded rollout's pods, write sheds (never of the control plane or everyone) and delete
sheds and rollout lanes.

Redirected to a file, the file is made readable by its owner only (mode 600).

Manual: ` + ManualURL + `#break-glass`,
		Example: `  bulkhead breakglass kubeconfig --ttl 1h > bg.kubeconfig
  kubectl --kubeconfig bg.kubeconfig get daemonsets -A
  bulkhead --kubeconfig bg.kubeconfig rollout abort agent -n telemetry`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := breakglass.CheckTokenTTL(ttl); err != nil {
				return err
			}
			cfg, err := clusterConfig(kube)
			if err != nil {
				return err
			}
			client, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return fmt.Errorf("kubeconfig: %w", err)
			}
			ctx := commandContext(cmd)
			caller, _ := breakglass.Whoami(ctx, client)
			token, err := breakglass.MintToken(ctx, client, ttl)
			if err != nil {
				return err
			}
			bgConfig := breakglass.TokenConfig(cfg, token.Value)
			if bgClient, err := kubernetes.NewForConfig(bgConfig); err == nil {
				if err := breakglass.RecordMint(ctx, bgClient, caller.User, "a kubeconfig ("+ttl.String()+")", token); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err)
				}
				removeExpired(cmd, bgClient)
			}
			kubeconfig, err := breakglass.Kubeconfig(cfg, token.Value)
			if err != nil {
				return err
			}
			out, err := clientcmd.Write(*kubeconfig)
			if err != nil {
				return fmt.Errorf("encode kubeconfig: %w", err)
			}
			where, err := protectDestination(cmd.OutOrStdout())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "break-glass kubeconfig for %s/%s (audience %s), valid until %s; %s\n",
				breakglass.Namespace, breakglass.ServiceAccountName, strings.Join(token.Audiences, ","), token.Expires.UTC().Format(time.RFC3339), where)
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", breakglass.DefaultTokenTTL, "lifetime of the token (10m to 24h)")
	return cmd
}

// protectDestination says where the kubeconfig, a bearer credential, goes: a file it is
// redirected to is made private (mode 600) before anything is written to it.
func protectDestination(w io.Writer) (string, error) {
	f, ok := w.(*os.File)
	if !ok {
		return "it holds a bearer token: keep it private (chmod 600)", nil
	}
	info, err := f.Stat()
	switch {
	case err != nil:
		return "", fmt.Errorf("stdout: %w", err)
	case info.Mode().IsRegular():
		if err := f.Chmod(0o600); err != nil {
			return "", fmt.Errorf("make the kubeconfig file private (chmod 600): %w", err)
		}
		name := f.Name()
		if target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd())); err == nil {
			name = target
		}
		return "written to " + name + " (mode 600)", nil
	case isTerminal(f):
		return "printed to the terminal: redirect it to a file (> bg.kubeconfig), which bulkhead makes mode 600", nil
	}
	return "it holds a bearer token: store it with mode 600", nil
}
