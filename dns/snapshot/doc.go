// Package snapshot persists the Services and EndpointSlices bulkhead dns last synced, so that a
// restarted server answers cluster names before the API server does.
//
// Model: a snapshot file is a 52-byte header (magic "BHDNSSNP", format version, payload length,
// SHA-256 of the payload) followed by a JSON payload. Write replaces the file atomically and
// durably: temp file in the same directory, fsync, rename over the old file, fsync the directory;
// a crash at any point leaves either the previous or the new complete file. Read verifies
// everything before returning data; a file that fails any check is a *CorruptError, which
// callers report and ignore. A Writer coalesces bursts of changes into one write per delay.
package snapshot
