package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/yaml"
)

// Output formats a script can parse, besides the human-readable default.
const (
	formatText = ""
	formatJSON = "json"
	formatYAML = "yaml"
)

// addOutputFlag adds -o json|yaml to a command whose default output is text.
func addOutputFlag(cmd *cobra.Command, format *string) {
	cmd.Flags().StringVarP(format, "output", "o", formatText, "output format: json or yaml (default: text for people)")
}

func checkOutput(format string) error {
	switch format {
	case formatText, formatJSON, formatYAML:
		return nil
	}
	return fmt.Errorf("-o %s: want json or yaml (or no -o for text)", format)
}

// printStructured writes v as indented JSON or as YAML (the same fields: YAML is made from the
// JSON encoding).
func printStructured(w io.Writer, format string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", format, err)
	}
	if format == formatYAML {
		if data, err = yaml.JSONToYAML(data); err != nil {
			return fmt.Errorf("encode yaml: %w", err)
		}
	} else {
		data = append(data, '\n')
	}
	_, err = w.Write(data)
	return err
}

// isTerminal reports whether w is a terminal, where screen control and key presses make sense.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// briefly says in a few words why a request failed, for warnings that must stay one short line.
func briefly(err error) string {
	var netErr net.Error
	switch {
	case apierrors.IsForbidden(err):
		return "not allowed (RBAC)"
	case apierrors.IsUnauthorized(err):
		return "credentials refused"
	case apierrors.IsTooManyRequests(err):
		return "the API server rejected the request (429)"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "the API server refused the connection"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout(), apierrors.IsTimeout(err), apierrors.IsServerTimeout(err):
		return "the API server did not answer in time"
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && len(msg) > 80 {
		msg = msg[i+2:]
	}
	if len(msg) > 80 {
		msg = msg[:77] + "..."
	}
	return msg
}
