package behavior

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"k8s.io/client-go/discovery"
)

// resourceInfo is where a resource lives in the API.
type resourceInfo struct {
	prefix     string // "/api/v1" or "/apis/<group>/<version>"
	plural     string
	namespaced bool
}

// Resources maps resource names ("pods", "leases", "leases.coordination.k8s.io") to API paths.
type Resources map[string]resourceInfo

// DiscoverResources asks the API server once which resources it serves (preferred versions).
func DiscoverResources(d discovery.DiscoveryInterface) (Resources, error) {
	lists, err := d.ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return nil, fmt.Errorf("discover API resources: %w", err)
	}
	out := Resources{}
	for _, list := range lists {
		prefix := "/apis/" + list.GroupVersion
		group := ""
		if !strings.Contains(list.GroupVersion, "/") {
			prefix = "/api/" + list.GroupVersion
		} else {
			group = strings.SplitN(list.GroupVersion, "/", 2)[0]
		}
		for _, r := range list.APIResources {
			if strings.Contains(r.Name, "/") {
				continue // subresources are not listable
			}
			info := resourceInfo{prefix: prefix, plural: r.Name, namespaced: r.Namespaced}
			if group != "" {
				out[r.Name+"."+group] = info
			}
			// The core group wins an unqualified name clash (events, for example).
			if _, taken := out[r.Name]; !taken || group == "" {
				out[r.Name] = info
			}
		}
	}
	return out, nil
}

// path builds the request path and query of an action.
func (rs Resources) path(a Action, watch bool, continueToken string) (string, error) {
	info, ok := rs[a.Resource]
	if !ok {
		return "", fmt.Errorf("unknown resource %q", a.Resource)
	}
	if a.Namespace != "" && !info.namespaced {
		return "", fmt.Errorf("resource %q is cluster-scoped and takes no namespace", a.Resource)
	}
	if a.Verb.targetsObject() && a.Namespace == "" && info.namespaced {
		return "", fmt.Errorf("%s of namespaced %q needs resource/namespace/name", a.Verb, a.Resource)
	}
	p := info.prefix
	if a.Namespace != "" {
		p += "/namespaces/" + url.PathEscape(a.Namespace)
	}
	p += "/" + info.plural
	// A delete's name is the object it picked, known only when it runs.
	if a.Name != "" {
		p += "/" + url.PathEscape(a.Name)
	}
	q := url.Values{}
	if a.LabelSelector != "" {
		q.Set("labelSelector", a.LabelSelector)
	}
	if a.FieldSelector != "" {
		q.Set("fieldSelector", a.FieldSelector)
	}
	if a.HasRV {
		q.Set("resourceVersion", a.ResourceVersion)
	}
	if a.Limit > 0 {
		q.Set("limit", strconv.FormatInt(a.Limit, 10))
	}
	if continueToken != "" {
		q.Set("continue", continueToken)
		q.Del("resourceVersion") // a continue token carries its own
	}
	if watch {
		q.Set("watch", "true")
		q.Set("allowWatchBookmarks", "true")
	}
	if enc := q.Encode(); enc != "" {
		p += "?" + enc
	}
	return p, nil
}

// listMeta is the part of a list response the emulator reads.
type listMeta struct {
	ResourceVersion string `json:"resourceVersion"`
	Continue        string `json:"continue"`
}

// do performs one request, discarding the body after reading a list's leading metadata.
func do(ctx context.Context, client *http.Client, host, path string, readMeta bool) (listMeta, int64, error) {
	var meta listMeta
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, host+path, nil)
	if err != nil {
		return meta, 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return meta, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		n, _ := io.Copy(io.Discard, resp.Body)
		return meta, n + int64(len(msg)), &statusError{code: resp.StatusCode, body: strings.TrimSpace(string(msg))}
	}
	var body io.Reader = resp.Body
	if readMeta {
		meta, body, err = readListMeta(resp.Body)
		if err != nil {
			return meta, 0, err
		}
	}
	n, err := io.Copy(io.Discard, body)
	return meta, n, err
}

// readListMeta decodes only the "metadata" member of a list, which the apiserver writes before
// "items", and returns a reader for the rest of the body.
func readListMeta(body io.Reader) (listMeta, io.Reader, error) {
	var meta listMeta
	dec := json.NewDecoder(body)
	rest := func() io.Reader { return io.MultiReader(dec.Buffered(), body) }
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return meta, rest(), fmt.Errorf("list response is not a JSON object: %v", err)
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return meta, rest(), fmt.Errorf("read list response: %w", err)
		}
		if key == "metadata" {
			err := dec.Decode(&meta)
			return meta, rest(), err
		}
		if key == "items" {
			return meta, rest(), errors.New("list response has items before metadata")
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return meta, rest(), fmt.Errorf("read list response: %w", err)
		}
	}
	return meta, rest(), errors.New("list response has no metadata")
}

// maxWriteResponse bounds what send reads of a response: the objects written are small, and a
// larger answer is not one the emulator needs.
const maxWriteResponse = 1 << 20

// send performs one request with a body (nil for none) and returns the response body, which
// writes need: the name a create was given, the object an update changes.
func send(ctx context.Context, client *http.Client, method, host, path, contentType string, body []byte) ([]byte, error) {
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, host+path, reader)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxWriteResponse))
	if err != nil {
		return nil, fmt.Errorf("read %s %s response: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return answer, &statusError{code: resp.StatusCode, body: strings.TrimSpace(string(answer[:min(len(answer), 512)]))}
	}
	return answer, nil
}

type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.code, e.body) }
