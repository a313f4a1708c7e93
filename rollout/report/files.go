package report

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Paths are the files --report FILE writes: FILE as HTML and FILE with its extension replaced
// by .json; FILE ending in .json is the JSON alone.
func Paths(file string) (html, jsonPath string) {
	ext := filepath.Ext(file)
	if strings.EqualFold(ext, ".json") {
		return "", file
	}
	return file, strings.TrimSuffix(file, ext) + ".json"
}

// CheckPath refuses a --report path before the rollout starts, so a rollout never runs to its
// end only to fail writing its report: the directory must exist and the files must not be
// directories.
func CheckPath(file string) error {
	if strings.TrimSpace(file) == "" {
		return fmt.Errorf("--report: empty path")
	}
	html, jsonPath := Paths(file)
	for _, p := range []string{html, jsonPath} {
		if p == "" {
			continue
		}
		dir := filepath.Dir(p)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return fmt.Errorf("--report %s: directory %s does not exist", file, dir)
		}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return fmt.Errorf("--report %s: %s is a directory", file, p)
		}
	}
	return nil
}

// WriteFiles writes the report's files (see Paths) and returns their paths.
func WriteFiles(file string, r Report) ([]string, error) {
	html, jsonPath := Paths(file)
	var written []string
	if html != "" {
		var b bytes.Buffer
		if err := WriteHTML(&b, r); err != nil {
			return nil, err
		}
		if err := os.WriteFile(html, b.Bytes(), 0o644); err != nil {
			return nil, fmt.Errorf("write report: %w", err)
		}
		written = append(written, html)
	}
	var b bytes.Buffer
	if err := WriteJSON(&b, r); err != nil {
		return written, err
	}
	if err := os.WriteFile(jsonPath, b.Bytes(), 0o644); err != nil {
		return written, fmt.Errorf("write report: %w", err)
	}
	return append(written, jsonPath), nil
}
