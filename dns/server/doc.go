// Package server answers DNS queries over UDP and TCP from an index.Index held in an atomic
// pointer, and hands names outside the cluster zone to an upstream Resolver.
//
// Model: the hot path never unpacks or packs a message. It reads the 12-byte header and the
// question (lower-casing the name into a fixed buffer), skims the additional section for an OPT
// record, looks the name up and copies the index's pre-packed response into a per-worker buffer,
// patching ID, flags and the question's original case. EDNS0 adds an 11-byte OPT record; an
// answer larger than the client's UDP size is replaced by an empty one with the TC bit so the
// client retries over TCP. Everything unusual (upstream names, malformed input) leaves the hot
// path: the upstream path uses miekg/dns messages and runs off the read loop. On Linux the UDP
// readers are threads blocked in recvfrom on a blocking duplicate of the socket, which skips the
// network poller's per-packet wake-ups (udp_linux.go).
//
// Rcodes: FORMERR for messages that cannot be parsed (shorter than a header: dropped; responses:
// dropped), NOTIMP for opcodes other than QUERY, BADVERS for EDNS versions other than 0, REFUSED
// for classes other than IN, for zone transfers, and for names outside the cluster zone when no
// upstream is configured, SERVFAIL for cluster names before any index is loaded.
package server
