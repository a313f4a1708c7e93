// Package cli wires bulkhead's cobra commands to the capability packages. Commands here only parse
// flags, call a capability and print its result: no decision logic lives in this package.
package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// ManualURL is the published user manual; help points there, never to files of the repository a
// plugin user does not have.
const ManualURL = "https://github.com/bulkhead-dev/bulkhead/blob/main/docs/manual.md"

// Annotations that tell the root command how a subcommand treats -n and the kubeconfig.
const (
	// namespacedAnnotation marks a command for which -n means something; every other command
	// refuses -n instead of silently ignoring it.
	namespacedAnnotation = "bulkhead.dev/namespaced"
	// kubeconfigAnnotation marks a command that always needs a cluster: the root checks, before
	// it runs, that a kubeconfig (or in-cluster configuration) exists. Commands that reach the
	// cluster only on some paths check for themselves (clusterConfig).
	kubeconfigAnnotation = "bulkhead.dev/needs-kubeconfig"
)

// NewRootCommand builds the whole bulkhead command tree. out and errOut receive the commands'
// output so tests can run commands in-process.
func NewRootCommand(out, errOut io.Writer) *cobra.Command {
	kube := genericclioptions.NewConfigFlags(true)
	root := &cobra.Command{
		Use:   "bulkhead",
		Short: "Keep a Kubernetes fleet alive when a fleet-wide change goes wrong",
		Long: `bulkhead rolls DaemonSets out in guarded node waves (rollout), serves cluster DNS from a node-local
snapshot that survives API outages (dns), keeps a break-glass lane into an overloaded API server and
jails a culprit identity (install, breakglass, shed), and shows who loads the control plane (top).

Manual: ` + ManualURL,
		Example: `  bulkhead install                       # the break-glass lane, once, as cluster admin
  bulkhead rollout apply -f agent.yaml   # a guarded rollout of a DaemonSet
  bulkhead top                           # who loads the API servers, live`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := refuseNamespace(cmd); err != nil {
				return err
			}
			if cmd.Annotations[kubeconfigAnnotation] != "" {
				return requireKubeconfig(kube)
			}
			return nil
		},
	}
	root.SetOut(out)
	root.SetErr(errOut)
	kube.AddFlags(root.PersistentFlags())
	root.AddCommand(newVersionCommand(kube))
	root.AddCommand(newTopCommand(kube))
	root.AddCommand(newDNSCommand(kube))
	root.AddCommand(newInstallCommand(kube), newUninstallCommand(kube), newBreakGlassCommand(kube), newShedCommand(kube), newUnshedCommand(kube))
	root.AddCommand(newRolloutCommand(kube))
	root.AddCommand(newControllerCommand(kube))
	root.InitDefaultCompletionCmd()
	describeCompletion(root)
	markRollout(root)
	failOnUnknownSubcommands(root)
	return root
}

// AsKubectlPlugin makes help read as the command is invoked when installed as
// kubectl-bulkhead: `kubectl bulkhead ...` in usage lines and examples.
func AsKubectlPlugin(root *cobra.Command) {
	if root.Annotations == nil {
		root.Annotations = map[string]string{}
	}
	root.Annotations[cobra.CommandDisplayNameAnnotation] = "kubectl bulkhead"
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.Example = asPlugin(c.Example)
		c.Long = asPlugin(c.Long)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// asPlugin rewrites command lines that start with "bulkhead " (after indentation or a shell
// prompt's "$ ") to start with "kubectl bulkhead ".
func asPlugin(text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		trimmed := strings.TrimLeft(l, " \t")
		if strings.HasPrefix(trimmed, "bulkhead ") {
			lines[i] = l[:len(l)-len(trimmed)] + "kubectl " + trimmed
		}
	}
	return strings.Join(lines, "\n")
}

// failOnUnknownSubcommands gives every command that only groups others a RunE: alone it shows
// help; with an argument it fails as kubectl does, so `bulkhead rollout abrot` cannot succeed
// in a script.
func failOnUnknownSubcommands(c *cobra.Command) {
	if c.HasSubCommands() && !c.Runnable() {
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return unknownCommand(cmd, args[0])
		}
	}
	for _, sub := range c.Commands() {
		failOnUnknownSubcommands(sub)
	}
}

func unknownCommand(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default, which it sets on the root only
	}
	if suggestions := cmd.SuggestionsFor(name); len(suggestions) > 0 {
		msg += "; did you mean " + strings.Join(suggestions, " or ") + "?"
	}
	return errors.New(msg + " (see " + cmd.CommandPath() + " --help)")
}

// markRollout: every rollout command reads or writes the DaemonSet named by -n, and needs a
// cluster on every path.
func markRollout(root *cobra.Command) {
	for _, c := range root.Commands() {
		if c.Name() != "rollout" {
			continue
		}
		for _, sub := range c.Commands() {
			annotate(sub, namespacedAnnotation, kubeconfigAnnotation)
		}
	}
}

func annotate(c *cobra.Command, keys ...string) {
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	for _, k := range keys {
		c.Annotations[k] = "true"
	}
}

// refuseNamespace refuses -n on commands for which it has no meaning: silently ignoring it
// would let a user believe they acted on one namespace.
func refuseNamespace(cmd *cobra.Command) error {
	if cmd.Annotations[namespacedAnnotation] != "" || strings.HasPrefix(cmd.Name(), "__") {
		return nil
	}
	if f := cmd.Flags().Lookup("namespace"); f != nil && f.Changed {
		return fmt.Errorf("-n/--namespace has no meaning for %s: it acts on cluster-wide objects; drop -n", cmd.CommandPath())
	}
	return nil
}

func describeCompletion(root *cobra.Command) {
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.Example = `  bulkhead completion bash > /etc/bash_completion.d/bulkhead
  bulkhead completion zsh > "${fpath[1]}/_bulkhead"`
		for _, shell := range c.Commands() {
			shell.Example = fmt.Sprintf("  bulkhead completion %s > bulkhead-completion.%s", shell.Name(), shell.Name())
		}
	}
}
