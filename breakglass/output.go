package breakglass

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// WriteYAML prints objects as one YAML stream, the way `install --dry-run` shows them: what
// would be sent, without the empty spec and status the API types carry.
func WriteYAML(w io.Writer, objects []runtime.Object) error {
	for i, o := range objects {
		raw, err := json.Marshal(o)
		if err != nil {
			return fmt.Errorf("encode %T: %w", o, err)
		}
		var fields map[string]any
		if err := json.Unmarshal(raw, &fields); err != nil {
			return fmt.Errorf("encode %T: %w", o, err)
		}
		for _, key := range []string{"spec", "status"} {
			if m, ok := fields[key].(map[string]any); ok && len(m) == 0 {
				delete(fields, key)
			}
		}
		out, err := yaml.Marshal(fields)
		if err != nil {
			return fmt.Errorf("encode %T: %w", o, err)
		}
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		if _, err := w.Write(out); err != nil {
			return err
		}
	}
	return nil
}

// WriteShedTable prints sheds as a table; expiry is shown relative to now. With traffic (nil
// when /metrics could not be read) it adds what the API servers rejected and admitted.
func WriteShedTable(w io.Writer, sheds []Shed, traffic map[string]Traffic, now time.Time) error {
	if len(sheds) == 0 {
		_, err := fmt.Fprintln(w, "No sheds.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "NAME\tIDENTITY\tMODE\tEXPIRES IN\tBY"
	if traffic != nil {
		header += "\tREJECTED\tADMITTED"
	}
	fmt.Fprintln(tw, header+"\tREASON")
	for _, s := range sheds {
		expires := "?"
		if s.Invalid == "" {
			expires = s.Expires.Sub(now).Round(time.Second).String()
		}
		reason := s.Reason
		if s.Invalid != "" {
			reason = "INVALID: " + s.Invalid
		}
		row := fmt.Sprintf("%s\t%s\t%s\t%s\t%s", s.Name, s.Identity, s.Mode, expires, dash(s.By))
		if traffic != nil {
			t := traffic[s.Name]
			row += fmt.Sprintf("\t%.0f\t%.0f", t.Rejected, t.Admitted)
		}
		fmt.Fprintln(tw, row+"\t"+dash(reason))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ShedEntry is one shed as `shed list -o json|yaml` prints it: the shed and, when the API
// servers' /metrics could be read, what its jail rejected and admitted.
type ShedEntry struct {
	Shed
	Rejected *float64 `json:"rejected,omitempty"`
	Admitted *float64 `json:"admitted,omitempty"`
}

// ShedList is the document `shed list -o json|yaml` prints.
type ShedList struct {
	Sheds []ShedEntry `json:"sheds"`
}

// ShedReport joins sheds with their jails' traffic (nil when /metrics could not be read).
func ShedReport(sheds []Shed, traffic map[string]Traffic) ShedList {
	out := ShedList{Sheds: make([]ShedEntry, 0, len(sheds))}
	for _, s := range sheds {
		e := ShedEntry{Shed: s}
		if traffic != nil {
			t := traffic[s.Name]
			e.Rejected, e.Admitted = &t.Rejected, &t.Admitted
		}
		out.Sheds = append(out.Sheds, e)
	}
	return out
}
