package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	miekgdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulkhead-dev/bulkhead/internal/labtest"
)

// coreDNS is a running CoreDNS with the kubernetes plugin against the lab.
type coreDNS struct {
	addr string
	log  string
	cmd  *exec.Cmd
}

// startCoreDNS runs CoreDNS on addr ("" for a free port) with the kubernetes plugin as the
// specification leaves it by default (pods disabled, TTL 5, no fallthrough), plus plugins, one
// Corefile line each (such as "cache 30").
func startCoreDNS(t testing.TB, addr string, plugins ...string) *coreDNS {
	t.Helper()
	if addr == "" {
		addr = freeAddr(t)
	}
	host, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	corefile := filepath.Join(dir, "Corefile")
	conf := fmt.Sprintf(".:%s {\n  bind %s\n  kubernetes cluster.local in-addr.arpa ip6.arpa {\n    kubeconfig %s\n  }\n  %s\n}\n",
		port, host, lab.Kubeconfig, strings.Join(plugins, "\n  "))
	if err := os.WriteFile(corefile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "coredns.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(labtest.CoreDNS(t), "-conf", corefile)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &coreDNS{addr: addr, log: log.Name(), cmd: cmd}
	t.Cleanup(c.stop)
	return c
}

func (c *coreDNS) stop() {
	if c.cmd.ProcessState == nil {
		c.cmd.Process.Kill()
		c.cmd.Wait()
	}
}

// waitAnswering waits until server answers name with NOERROR.
func waitAnswering(addr, name string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m, err := exchange(addr, "udp", name, miekgdns.TypeA); err == nil && m.Rcode == miekgdns.RcodeSuccess {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not answering %s after 30s", addr, name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logTail is the end of CoreDNS's output, for failure messages.
func (c *coreDNS) logTail() string {
	b, _ := os.ReadFile(c.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// canonical renders what must agree between two servers: rcode, AA, the answer and additional
// sections as sorted record sets, and the authority section (SOA serials differ by design).
func canonical(m *miekgdns.Msg) string {
	section := func(rrs []miekgdns.RR) string {
		var out []string
		for _, rr := range rrs {
			if rr.Header().Rrtype == miekgdns.TypeOPT {
				continue
			}
			if soa, ok := rr.(*miekgdns.SOA); ok {
				c := *soa
				c.Serial = 0
				rr = &c
			}
			out = append(out, strings.ToLower(strings.ReplaceAll(rr.String(), "\t", " ")))
		}
		sort.Strings(out)
		return strings.Join(out, " | ")
	}
	return fmt.Sprintf("%s aa=%v ra=%v an=[%s] ns=[%s] ar=[%s]", miekgdns.RcodeToString[m.Rcode], m.Authoritative, m.RecursionAvailable,
		section(m.Answer), section(m.Ns), section(m.Extra))
}

type question struct {
	name  string
	qtype uint16
}

// labQuestions lists every service, headless service, named port, endpoint and PTR name of the
// lab, plus names that must not exist and names that exist without the asked type.
func labQuestions(t *testing.T) []question {
	t.Helper()
	ctx := context.Background()
	svcs, err := lab.Client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eps, err := lab.Client.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	qs := []question{
		{"cluster.local.", miekgdns.TypeSOA},
		{"dns-version.cluster.local.", miekgdns.TypeTXT},
		{"svc.cluster.local.", miekgdns.TypeA},
		{"lab.svc.cluster.local.", miekgdns.TypeA},
		{"nope.lab.svc.cluster.local.", miekgdns.TypeA},
		{"nope.nons.svc.cluster.local.", miekgdns.TypeA},
		{"a.b.nope.lab.svc.cluster.local.", miekgdns.TypeA},
		{"*.lab.svc.cluster.local.", miekgdns.TypeA},
		{"_http._udp.svc-001.lab.svc.cluster.local.", miekgdns.TypeSRV},
		{"_tcp.svc-001.lab.svc.cluster.local.", miekgdns.TypeSRV},
		{"svc-001.lab.svc.cluster.local.", miekgdns.TypeCAA},
		{"svc-001.lab.svc.cluster.local.", miekgdns.TypeANY},
		{"pod.cluster.local.", miekgdns.TypeA},
		{"lab.pod.cluster.local.", miekgdns.TypeA},
		{"nons.svc.cluster.local.", miekgdns.TypeA},
		{"10-0-0-1.lab.pod.cluster.local.", miekgdns.TypeA},
	}
	for _, s := range svcs.Items {
		base := s.Name + "." + s.Namespace + ".svc.cluster.local."
		for _, qt := range []uint16{miekgdns.TypeA, miekgdns.TypeAAAA, miekgdns.TypeSRV, miekgdns.TypeMX} {
			qs = append(qs, question{base, qt})
		}
		for _, p := range s.Spec.Ports {
			if p.Name != "" {
				qs = append(qs, question{"_" + p.Name + "._" + strings.ToLower(string(p.Protocol)) + "." + base, miekgdns.TypeSRV})
			}
		}
		if s.Spec.ClusterIP != corev1.ClusterIPNone && s.Spec.ClusterIP != "" {
			rev, _ := miekgdns.ReverseAddr(s.Spec.ClusterIP)
			qs = append(qs, question{rev, miekgdns.TypePTR})
		}
		if s.Spec.ClusterIP != corev1.ClusterIPNone {
			continue
		}
		for _, slice := range eps.Items {
			if slice.Namespace != s.Namespace || slice.Labels[discoveryv1.LabelServiceName] != s.Name {
				continue
			}
			for _, e := range slice.Endpoints {
				for _, a := range e.Addresses {
					rev, _ := miekgdns.ReverseAddr(a)
					qs = append(qs, question{rev, miekgdns.TypePTR})
					qs = append(qs, question{strings.NewReplacer(".", "-", ":", "-").Replace(a) + "." + base, miekgdns.TypeA})
				}
			}
		}
	}
	return qs
}

func TestAnswersMatchCoreDNSForEveryLabName(t *testing.T) {
	core := startCoreDNS(t, "")
	n := startNode(t, filepath.Join(t.TempDir(), "dns.snapshot"), "127.0.0.1:0")
	defer n.Stop()
	waitReady(t, n)
	if err := waitAnswering(core.addr, "kubernetes.default.svc.cluster.local."); err != nil {
		t.Fatalf("CoreDNS: %v\n%s", err, core.logTail())
	}
	// Both servers must have seen the same state: retry the comparison while endpoints settle.
	deadline := time.Now().Add(15 * time.Second)
	for {
		qs := labQuestions(t)
		var diffs []string
		for _, q := range qs {
			for _, network := range []string{"udp", "tcp"} {
				ours, err := exchange(n.DNSAddr(), network, q.name, q.qtype)
				if err != nil {
					t.Fatalf("bulkhead %s: %v", q.name, err)
				}
				theirs, err := exchange(core.addr, network, q.name, q.qtype)
				if err != nil {
					t.Fatalf("coredns %s: %v", q.name, err)
				}
				if a, b := canonical(ours), canonical(theirs); a != b {
					diffs = append(diffs, fmt.Sprintf("%s %s over %s:\n  bulkhead: %s\n  coredns:  %s", q.name, miekgdns.TypeToString[q.qtype], network, a, b))
				}
			}
		}
		if len(diffs) == 0 {
			t.Logf("%d questions answered identically by bulkhead dns and CoreDNS v1.15.0 over UDP and TCP", len(qs))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d answers differ from CoreDNS:\n%s", len(diffs), 2*len(qs), strings.Join(diffs, "\n"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}
