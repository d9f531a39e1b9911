package zerorelay_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	zerorelay "github.com/zerorelay/zerorelay/sdk-go"
)

// writePKI writes a test CA and a certificate for 127.0.0.1 it signed:
// the paths of the CA, the certificate chain and the key.
func writePKI(t *testing.T) (ca, cert, key string) {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "zerorelay test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(err)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caTmpl, &leafKey.PublicKey, caKey)
	must(err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	must(err)
	pemOf := func(kind string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}) }
	ca, cert, key = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	must(os.WriteFile(ca, pemOf("CERTIFICATE", caDER), 0o600))
	must(os.WriteFile(cert, append(pemOf("CERTIFICATE", leafDER), pemOf("CERTIFICATE", caDER)...), 0o600))
	must(os.WriteFile(key, pemOf("PRIVATE KEY", keyDER), 0o600))
	return ca, cert, key
}

func TestTheEmbeddedRelayServesWSSToAClientThatTrustsItsCA(t *testing.T) {
	ca, cert, key := writePKI(t)
	s := startServer(t, map[string]any{"tls": map[string]any{"cert_file": cert, "key_file": key}})
	if want := "wss://" + s.Addr() + "/ws"; s.URL() != want {
		t.Fatalf("URL %s, want %s", s.URL(), want)
	}
	alice := dial(t, s.URL(), "alice", zerorelay.WithCAFile(ca))
	if err := alice.Join(ctx(t), "room"); err != nil {
		t.Fatal(err)
	}
	if err := alice.PublishEcho(ctx(t), "room", "hello over tls"); err != nil {
		t.Fatal(err)
	}
	if m := next(t, alice); string(m.Data) != `"hello over tls"` || m.From != "alice" {
		t.Fatalf("got %+v", m)
	}
	// Without the CA the handshake fails, however long the client tries.
	_, err := zerorelay.Dial(ctx(t), s.URL(), zerorelay.WithUser("mallory"), zerorelay.WithoutReconnect(),
		zerorelay.WithConnectTimeout(5*time.Second))
	if !errors.Is(err, zerorelay.ErrConnection) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("want a connection error about the certificate, got %v", err)
	}
}
