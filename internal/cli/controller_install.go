package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/bulkhead-dev/bulkhead/controller"
	manifests "github.com/bulkhead-dev/bulkhead/deploy/controller"
)

const controllerDefaultImage = manifests.DefaultImage

// installController is install --controller's second half, after the break-glass lane.
func installController(cmd *cobra.Command, cfg *rest.Config, image string) error {
	done, err := controller.Install(commandContext(cmd), cfg, image)
	for _, line := range done {
		fmt.Fprintln(cmd.OutOrStdout(), line)
	}
	if err != nil {
		return fmt.Errorf("install the controller: %w", err)
	}
	return nil
}

func writeControllerManifests(w io.Writer, image string) error {
	objs, err := manifests.Objects(image)
	if err != nil {
		return err
	}
	for _, o := range objs {
		out, err := yaml.Marshal(o.Object)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", o.GetKind(), o.GetName(), err)
		}
		if _, err := fmt.Fprintf(w, "---\n%s", out); err != nil {
			return err
		}
	}
	return nil
}
