package certs

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
)

type recordURL struct{ got *http.Request }

func (r *recordURL) RoundTrip(req *http.Request) (*http.Response, error) {
	r.got = req
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}, nil
}

// The selector is what lets RBAC grant list and watch by resourceNames.
func TestNameSelector(t *testing.T) {
	secrets := "/api/v1/namespaces/pushmon-system/secrets"
	for _, tc := range []struct {
		name, method, url, wantQuery string
	}{
		{"list", http.MethodGet, "https://api" + secrets + "?limit=500", "fieldSelector=metadata.name%3Dcert&limit=500"},
		{"watch with a selector already", http.MethodGet, "https://api" + secrets + "?fieldSelector=a%3Db&watch=true",
			"fieldSelector=a%3Db%2Cmetadata.name%3Dcert&watch=true"},
		{"under a proxy's path prefix", http.MethodGet, "https://api/k8s/clusters/c1" + secrets, "fieldSelector=metadata.name%3Dcert"},
		{"get of one object", http.MethodGet, "https://api" + secrets + "/cert", ""},
		{"update", http.MethodPut, "https://api" + secrets, ""},
		{"another namespace", http.MethodGet, "https://api/api/v1/namespaces/other/secrets", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			next := &recordURL{}
			req, err := http.NewRequest(tc.method, tc.url, nil)
			g.Expect(err).NotTo(HaveOccurred())
			resp, err := nameSelector{next: next, names: map[string]string{secrets: "cert"}}.RoundTrip(req)
			g.Expect(err).NotTo(HaveOccurred())
			resp.Body.Close()
			if tc.wantQuery == "" {
				g.Expect(next.got.URL.String()).To(Equal(tc.url))
				return
			}
			g.Expect(next.got.URL.RawQuery).To(Equal(tc.wantQuery))
			g.Expect(req.URL.String()).To(Equal(tc.url), "the caller's request is not changed")
		})
	}
}

func TestGateReadyOnlyOnceStarted(t *testing.T) {
	g := NewWithT(t)
	ready := make(chan struct{})
	registered := 0
	gate := &Gate{Ready: ready, Register: func() (healthz.Checker, error) {
		registered++
		return func(*http.Request) error { return errors.New("server not serving") }, nil
	}}
	g.Expect(gate.NeedLeaderElection()).To(BeFalse())
	g.Expect(gate.ReadyCheck(nil)).To(MatchError(ContainSubstring("certificate not ready")))
	done := make(chan error, 1)
	go func() { done <- gate.Start(t.Context()) }()
	g.Consistently(done).ShouldNot(Receive())
	g.Expect(registered).To(Equal(0))
	close(ready)
	g.Eventually(done).Should(Receive(BeNil()))
	g.Expect(registered).To(Equal(1))
	// From then on the server's own check answers.
	g.Expect(gate.ReadyCheck(nil)).To(MatchError("server not serving"))
}

func TestWritePair(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		g.Expect(err).NotTo(HaveOccurred())
		return string(b)
	}
	changed, err := writePair(dir, map[string][]byte{"tls.crt": []byte("crt1"), "tls.key": []byte("key1")})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(changed).To(BeTrue())
	g.Expect(read("tls.crt") + read("tls.key")).To(Equal("crt1key1"))

	changed, err = writePair(dir, map[string][]byte{"tls.crt": []byte("crt1"), "tls.key": []byte("key1")})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(changed).To(BeFalse())

	changed, err = writePair(dir, map[string][]byte{"tls.crt": []byte("crt2"), "tls.key": []byte("key2")})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(changed).To(BeTrue())
	g.Expect(read("tls.crt") + read("tls.key")).To(Equal("crt2key2"))
	// The files are links into the one current directory; the previous
	// directory is gone.
	entries, err := os.ReadDir(dir)
	g.Expect(err).NotTo(HaveOccurred())
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	g.Expect(names).To(ConsistOf("..data", HavePrefix("..issued-"), "tls.crt", "tls.key"))
	link, err := os.Readlink(filepath.Join(dir, "tls.key"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(link).To(Equal(filepath.Join("..data", "tls.key")))
}
