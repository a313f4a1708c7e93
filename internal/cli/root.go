// Package cli wires bulkhead's cobra commands to the capability packages. Commands here only parse
// flags, call a capability and print its result: no decision logic lives in this package.
package cli

import (
	"io"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// NewRootCommand builds the whole bulkhead command tree. out and errOut receive the commands'
// output so tests can run commands in-process.
func NewRootCommand(out, errOut io.Writer) *cobra.Command {
	kube := genericclioptions.NewConfigFlags(true)
	root := &cobra.Command{
		Use:           "bulkhead",
		Short:         "Keep a Kubernetes fleet alive when a fleet-wide change goes wrong",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	kube.AddFlags(root.PersistentFlags())
	root.AddCommand(newVersionCommand())
	root.AddCommand(newTopCommand(kube))
	root.AddCommand(newDNSCommand(kube))
	root.AddCommand(newInstallCommand(kube), newUninstallCommand(kube), newBreakGlassCommand(kube), newShedCommand(kube), newUnshedCommand(kube))
	root.AddCommand(newRolloutCommand(kube))
	root.AddCommand(newControllerCommand(kube))
	return root
}
