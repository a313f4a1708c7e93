package demo

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	miekgdns "github.com/miekg/dns"
)

// process is a DNS server the demo runs, restarts and stops.
type process struct {
	name string
	argv []string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *process) start() error {
	logFile, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s log: %w", p.name, err)
	}
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(done) }()
	p.cmd, p.done = cmd, done
	return nil
}

// stop ends the process as a kubelet would a pod: SIGTERM, then SIGKILL after a grace.
func (p *process) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

func (p *process) restart() error {
	p.stop()
	return p.start()
}

// coreDNSProcess runs CoreDNS with the kubernetes and cache plugins, as a cluster's DNS does.
func coreDNSProcess(binary, dir, addr, kubeconfig string) (*process, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("CoreDNS address: %w", err)
	}
	corefile := filepath.Join(dir, "Corefile")
	conf := fmt.Sprintf(`.:%s {
    bind %s
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig %s
    }
    cache 30
}
`, port, host, kubeconfig)
	if err := os.WriteFile(corefile, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("write Corefile: %w", err)
	}
	return &process{name: CoreDNS, argv: []string{binary, "-conf", corefile}, log: filepath.Join(dir, "coredns.log")}, nil
}

// bulkheadDNSProcess runs `bulkhead dns` with its snapshot in dir.
func bulkheadDNSProcess(binary, dir, addr, kubeconfig string) *process {
	return &process{
		name: BulkheadDNS,
		argv: []string{binary, "dns", "--listen", addr, "--snapshot", filepath.Join(dir, "dns.snapshot"),
			"--metrics", "", "--upstream", "", "--kubeconfig", kubeconfig},
		log: filepath.Join(dir, "bulkhead-dns.log"),
	}
}

// waitAnswers waits until the server at addr answers name.
func waitAnswers(addr, name string, timeout time.Duration) error {
	client := &miekgdns.Client{Net: "udp", Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		q := new(miekgdns.Msg)
		q.SetQuestion(name, miekgdns.TypeA)
		if resp, _, err := client.Exchange(q, addr); err == nil && resp.Rcode == miekgdns.RcodeSuccess && len(resp.Answer) > 0 {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("no answer for %s from %s within %s", name, addr, timeout)
}

// freeAddr returns a 127.0.0.1 address whose port is free for both UDP and TCP.
func freeAddr() (string, error) {
	for range 20 {
		udp, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("find a free port: %w", err)
		}
		port := udp.LocalAddr().(*net.UDPAddr).Port
		tcp, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		udp.Close()
		if err == nil {
			tcp.Close()
			return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
		}
	}
	return "", fmt.Errorf("no port free for both UDP and TCP on 127.0.0.1")
}
