// Package upstream forwards names outside the cluster zone to the node's resolvers, caches the
// answers and serves them stale by RFC 8767 when the resolvers fail.
//
// Model: a cache entry is fresh until its TTL runs out (answer TTL, or the SOA minimum for
// negative answers, capped at MaxTTL). An expired entry is refreshed from the resolvers; it is
// served stale only when that refresh fails or has not answered within the client response
// timer (1.8 s), and only until MaxStale past its expiry. A stale answer carries TTL 30 s and
// Extended DNS Error 3 "Stale Answer" (RFC 8914). After a failed refresh the name is served
// stale without asking again for the failure recheck time (30 s). Concurrent misses for one
// name share one upstream query.
package upstream
