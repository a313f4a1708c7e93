package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateRejectsAPrometheusThatCannotRun(t *testing.T) {
	dir := t.TempDir()
	notExecutable := filepath.Join(dir, "prometheus.txt")
	if err := os.WriteFile(notExecutable, []byte("not a program"), 0o644); err != nil {
		t.Fatal(err)
	}
	notAProgram := filepath.Join(dir, "hostname")
	if err := os.WriteFile(notAProgram, []byte("lab\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	executable := filepath.Join(dir, "prometheus")
	if err := os.WriteFile(executable, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		mutate  func(*Options)
		wantErr string
	}{
		{"missing", func(o *Options) { o.Prometheus = filepath.Join(dir, "absent") }, "--prometheus " + filepath.Join(dir, "absent") + ": stat"},
		{"a directory", func(o *Options) { o.Prometheus = dir }, "--prometheus " + dir + " is not an executable file"},
		{"not executable", func(o *Options) { o.Prometheus = notExecutable }, "--prometheus " + notExecutable + " is not an executable file (mode -rw-r--r--)"},
		{"executable but not a program", func(o *Options) { o.Prometheus = notAProgram }, "--prometheus " + notAProgram + " is not a program (neither an ELF binary nor a script)"},
		{"behind the balanced endpoint", func(o *Options) {
			o.Prometheus, o.APIServers, o.Endpoint = executable, 3, EndpointBalancer
		}, "--prometheus scrapes each replica directly, which --endpoint balancer hides"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			tc.mutate(&o)
			err := o.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}

	o := DefaultOptions()
	o.Prometheus, o.APIServers = executable, 3
	if err := o.Validate(); err != nil {
		t.Fatalf("an executable --prometheus with 3 replicas: %v", err)
	}
}
