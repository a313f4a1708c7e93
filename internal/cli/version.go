package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
)

// Set at link time by the Makefile (-ldflags "-X github.com/bulkhead-dev/bulkhead/internal/cli.release=v1.2.3 ...").
// A plain `go build` leaves them empty: the version then comes from the module's build info and
// the commit from the VCS stamp Go embeds.
var (
	release   = ""
	commit    = ""
	buildDate = ""
)

// ClientVersion is what `bulkhead version` says about itself.
type ClientVersion struct {
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	// CommitDate is the commit's time (Go's VCS stamp); BuildDate when the binary was linked
	// (the Makefile's stamp), empty for a plain go build.
	CommitDate string `json:"commitDate,omitempty"`
	BuildDate  string `json:"buildDate,omitempty"`
	// Modified: built from a tree with uncommitted changes.
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

type versionOutput struct {
	ClientVersion ClientVersion `json:"clientVersion"`
	ServerVersion *version.Info `json:"serverVersion,omitempty"`
	// ServerError says why the server's version is missing.
	ServerError string `json:"serverError,omitempty"`
}

func newVersionCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print bulkhead's version, commit and build date, and the API server's version when reachable",
		Example: `  bulkhead version
  bulkhead version -o json | jq -r .clientVersion.commit`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			out := versionOutput{ClientVersion: clientVersion()}
			if server, err := serverVersion(kube); err != nil {
				out.ServerError = err.Error()
			} else {
				out.ServerVersion = server
			}
			if format != formatText {
				return printStructured(cmd.OutOrStdout(), format, out)
			}
			c := out.ClientVersion
			line := fmt.Sprintf("bulkhead %s (commit %s", c.Version, dashIfEmpty(c.Commit))
			if c.Modified {
				line += ", modified"
			}
			if c.BuildDate != "" {
				line += ", built " + c.BuildDate
			} else if c.CommitDate != "" {
				line += ", committed " + c.CommitDate
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s, %s, %s)\n", line, c.GoVersion, c.Platform)
			if out.ServerVersion != nil {
				fmt.Fprintf(w, "server: Kubernetes %s\n", out.ServerVersion.GitVersion)
			} else {
				fmt.Fprintf(w, "server: unknown: %s\n", out.ServerError)
			}
			return nil
		},
	}
	addOutputFlag(cmd, &format)
	return cmd
}

func clientVersion() ClientVersion {
	v := ClientVersion{Version: release, Commit: commit, BuildDate: buildDate, GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return withDefaultVersion(v)
	}
	if v.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			if v.Commit == "" {
				v.Commit = s.Value
			}
		case "vcs.time":
			v.CommitDate = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return withDefaultVersion(v)
}

func withDefaultVersion(v ClientVersion) ClientVersion {
	if v.Version == "" {
		v.Version = "devel"
	}
	return v
}

// buildVersion is the version bulkhead reports as its user agent.
func buildVersion() string { return clientVersion().Version }

// serverVersion asks the API server for its version, briefly: version must answer when the
// cluster does not.
func serverVersion(kube *genericclioptions.ConfigFlags) (*version.Info, error) {
	cfg, err := clusterConfig(kube)
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = 5 * time.Second
	client, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return client.ServerVersion()
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
