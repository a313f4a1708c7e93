package snapshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// FormatVersion is the payload format this package writes and reads.
const FormatVersion = 1

var magic = [8]byte{'B', 'H', 'D', 'N', 'S', 'S', 'N', 'P'}

const headerLen = 8 + 4 + 8 + sha256.Size

// maxPayload rejects a foreign file claiming an absurd size before allocating for it.
const maxPayload = 1 << 30

// State is what a snapshot holds: one synced view of the cluster.
type State struct {
	// SyncedAt is when this view was last known to match the API server.
	SyncedAt       time.Time                    `json:"syncedAt"`
	Services       []*corev1.Service            `json:"services"`
	EndpointSlices []*discoveryv1.EndpointSlice `json:"endpointSlices"`
}

// CorruptError says a snapshot file exists but must not be served. Reason is a short stable
// word for metrics: magic, version, length, checksum or decode.
type CorruptError struct {
	Path   string
	Reason string
	Detail string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("snapshot %s is unusable (%s): %s", e.Path, e.Reason, e.Detail)
}

// Write stores st at path crash-safely.
func Write(path string, st *State) error {
	payload, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode snapshot: %w", err)
	}
	header := make([]byte, 0, headerLen)
	header = append(header, magic[:]...)
	header = binary.BigEndian.AppendUint32(header, FormatVersion)
	header = binary.BigEndian.AppendUint64(header, uint64(len(payload)))
	sum := sha256.Sum256(payload)
	header = append(header, sum[:]...)

	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, base+tempSuffix+"*")
	if err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(header); err != nil {
		return fmt.Errorf("write snapshot %s: %w", tmp.Name(), err)
	}
	if _, err := tmp.Write(payload); err != nil {
		return fmt.Errorf("write snapshot %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("fsync snapshot %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close snapshot %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace snapshot %s: %w", path, err)
	}
	committed = true
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open snapshot directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync snapshot directory %s: %w", dir, err)
	}
	return nil
}

const tempSuffix = ".tmp-"

// RemoveStaleTemps deletes temp files a crashed writer left next to path.
func RemoveStaleTemps(path string) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list snapshot directory: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), base+tempSuffix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove stale snapshot temp file: %w", err)
			}
		}
	}
	return nil
}

// Read loads and verifies the snapshot at path. A missing file is an error wrapping
// os.ErrNotExist; a file that fails verification is a *CorruptError.
func Read(path string) (*State, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	defer f.Close()
	header := make([]byte, headerLen)
	if _, err := io.ReadFull(f, header); err != nil {
		return nil, &CorruptError{Path: path, Reason: "length", Detail: "shorter than a snapshot header"}
	}
	if !bytes.Equal(header[:8], magic[:]) {
		return nil, &CorruptError{Path: path, Reason: "magic", Detail: "not a bulkhead dns snapshot"}
	}
	if v := binary.BigEndian.Uint32(header[8:]); v != FormatVersion {
		return nil, &CorruptError{Path: path, Reason: "version", Detail: fmt.Sprintf("format version %d, this build reads %d", v, FormatVersion)}
	}
	n := binary.BigEndian.Uint64(header[12:])
	if n > maxPayload {
		return nil, &CorruptError{Path: path, Reason: "length", Detail: fmt.Sprintf("claims a %d-byte payload", n)}
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(f, payload); err != nil {
		return nil, &CorruptError{Path: path, Reason: "length", Detail: fmt.Sprintf("payload shorter than its %d bytes", n)}
	}
	if extra, _ := f.Read(make([]byte, 1)); extra != 0 {
		return nil, &CorruptError{Path: path, Reason: "length", Detail: "bytes after the payload"}
	}
	if sum := sha256.Sum256(payload); !bytes.Equal(sum[:], header[20:]) {
		return nil, &CorruptError{Path: path, Reason: "checksum", Detail: "payload does not match its checksum"}
	}
	st := &State{}
	if err := json.Unmarshal(payload, st); err != nil {
		return nil, &CorruptError{Path: path, Reason: "decode", Detail: err.Error()}
	}
	return st, nil
}
