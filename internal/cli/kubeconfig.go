package cli

import (
	"fmt"
	"os"
	"strings"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"
)

// clusterConfig is the client configuration of --kubeconfig, $KUBECONFIG, ~/.kube/config or the
// pod's in-cluster configuration, in that order; when there is none it says so and where it
// looked, instead of dialling client-go's last resort, localhost:8080.
func clusterConfig(kube *genericclioptions.ConfigFlags) (*rest.Config, error) {
	if err := requireKubeconfig(kube); err != nil {
		return nil, err
	}
	cfg, err := kube.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
}

// requireKubeconfig fails when no kubeconfig names a cluster, --server is not given and the
// process does not run in a pod.
func requireKubeconfig(kube *genericclioptions.ConfigFlags) error {
	if kube.APIServer != nil && *kube.APIServer != "" {
		return nil
	}
	loader := kube.ToRawKubeConfigLoader()
	raw, err := loader.RawConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	if len(raw.Clusters) > 0 {
		return nil
	}
	_, inClusterErr := rest.InClusterConfig()
	if inClusterErr == nil {
		return nil
	}
	var looked []string
	for _, path := range loader.ConfigAccess().GetLoadingPrecedence() {
		switch _, err := os.Stat(path); {
		case os.IsNotExist(err):
			looked = append(looked, path+" (does not exist)")
		case err != nil:
			looked = append(looked, fmt.Sprintf("%s (%v)", path, err))
		default:
			looked = append(looked, path+" (names no cluster)")
		}
	}
	source := "~/.kube/config"
	if os.Getenv("KUBECONFIG") != "" {
		source = "$KUBECONFIG"
	}
	return fmt.Errorf("no kubeconfig found: looked at %s (from %s) and for in-cluster configuration (%v); pass --kubeconfig or set KUBECONFIG",
		strings.Join(looked, ", "), source, inClusterErr)
}
