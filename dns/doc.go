// Package dns runs bulkhead dns: a node-local DNS server whose cluster data survives both an API
// server outage and its own restart.
//
// Model: Start wires the capability packages in one direction. The snapshot (if valid) becomes
// the first index, served before the API server answers; the watch then delivers complete views,
// each built into a new index (index), swapped in atomically (server) and queued for a
// debounced crash-safe write (snapshot). Names outside the cluster zone go to the upstream
// forwarder with its serve-stale cache (upstream). Readiness means "an index is being served":
// from a snapshot or from the first sync, whichever comes first.
//
// Config.Validate is a pure check of the user's flags; every error names the flag at fault.
package dns
