// Package index turns Services and EndpointSlices into the DNS records of the Kubernetes DNS
// specification and keeps every answer pre-packed in wire format.
//
// Model: an Index is built once from a complete view (Build) and never changes afterwards; the
// server reads it through an atomic pointer and a new view means a new Index. Each owner name has a
// Node holding, per query type, a complete DNS response (header, question, answer, authority,
// additional) packed with compression pointers that only point at the question name. A query for
// the same name differs only in ID, RD bit and the case of the question name, all of which sit at
// fixed offsets, so serving is copy + patch with no unpacking or packing.
//
// Names are keyed by their lower-cased wire form (length-prefixed labels), which is what a server
// has in hand after reading a query and cannot be ambiguous the way dotted text with escapes can.
//
// Where the specification leaves room the index answers like CoreDNS's kubernetes plugin (checked
// name by name against CoreDNS v1.15.0 in dns/e2e): no wildcards, no pod records, SOA in the
// authority section of NXDOMAIN and NODATA, headless Services without ready endpoints are
// NXDOMAIN, endpoints without a hostname are named by their dashed IP, an SRV query for the
// service name lists every port, ANY gets NODATA, and the only names without records are
// svc.<zone>, pod.<zone> and <namespace>.svc.<zone>.
package index
