// Package pki generates the lab's certificates at start-up: one CA, a serving certificate per
// kube-apiserver replica, a client certificate per component identity, and the service-account
// signing key.
// Every component authenticates as it would in production, so RBAC and APF see real identities.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Identity is a client certificate subject: CommonName is the user, Organizations the groups.
type Identity struct {
	Name   string // file stem, e.g. "admin"
	User   string
	Groups []string
}

// Files are the paths of one identity's client certificate and key.
type Files struct {
	Cert string
	Key  string
}

// Serving names a server certificate: its file stem and the addresses and names it is valid for.
type Serving struct {
	Name     string // file stem, e.g. "apiserver"
	IPs      []net.IP
	DNSNames []string
}

// Bundle is everything generated into a directory.
type Bundle struct {
	Dir       string
	CACert    string
	CACertPEM []byte
	// Serving holds the server certificates by Serving.Name.
	Serving   map[string]Files
	SAPublic  string
	SAPrivate string
	Clients   map[string]Files
}

// Generate writes a fresh CA, one serving certificate per entry of serving, a service account
// key pair and one client certificate per identity into dir.
func Generate(dir string, serving []Serving, identities []Identity) (*Bundle, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki dir: %w", err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	now := time.Now()
	caTemplate := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "bulkhead-lab-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	b := &Bundle{Dir: dir, Serving: map[string]Files{}, Clients: map[string]Files{}}
	b.CACertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if b.CACert, err = write(dir, "ca.crt", b.CACertPEM); err != nil {
		return nil, err
	}

	for _, s := range serving {
		template := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      pkix.Name{CommonName: "kube-apiserver"},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			IPAddresses:  s.IPs,
			DNSNames:     s.DNSNames,
		}
		cert, key, err := issue(dir, s.Name, template, caCert, caKey)
		if err != nil {
			return nil, err
		}
		b.Serving[s.Name] = Files{Cert: cert, Key: key}
	}

	for _, id := range identities {
		client := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      pkix.Name{CommonName: id.User, Organization: id.Groups},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		cert, key, err := issue(dir, id.Name, client, caCert, caKey)
		if err != nil {
			return nil, err
		}
		b.Clients[id.Name] = Files{Cert: cert, Key: key}
	}

	// Service-account tokens are signed with RSA, the algorithm every client verifies.
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("service account key: %w", err)
	}
	if b.SAPrivate, err = write(dir, "sa.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)})); err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("service account public key: %w", err)
	}
	if b.SAPublic, err = write(dir, "sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})); err != nil {
		return nil, err
	}
	return b, nil
}

func issue(dir, name string, template, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certPath, keyPath string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("%s key: %w", name, err)
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
	if err != nil {
		return "", "", fmt.Errorf("%s certificate: %w", name, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("%s key: %w", name, err)
	}
	if certPath, err = write(dir, name+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return "", "", err
	}
	if keyPath, err = write(dir, name+".key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

func write(dir, name string, data []byte) (string, error) {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	return path, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return n
}
