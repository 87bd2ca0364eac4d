package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/pushmon/pushmon/internal/heartbeat"
	"github.com/pushmon/pushmon/internal/operator"
)

// ownManager replaces the suite's manager, for the rest of the test, with
// one built as cmd/main.go builds it from cfg (its push endpoint on a fresh
// address, its log into the suite's log), connecting as user (restCfg when
// nil) and watching namespaces (all when none). It returns the push
// endpoint's base URL. The suite's manager is back when the test ends.
func ownManager(t *testing.T, user *rest.Config, cfg operator.Config, namespaces ...string) string {
	t.Helper()
	g := NewWithT(t)
	if user == nil {
		user = restCfg
	}
	stopManager()
	addr, err := freeAddr()
	g.Expect(err).NotTo(HaveOccurred())
	log := zap.New(zap.WriteTo(logs), zap.UseDevMode(true), zap.Level(zapcore.DebugLevel))
	mgr, err := ctrl.NewManager(user, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 log,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  operator.CacheOptions(namespaces...),
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	g.Expect(err).NotTo(HaveOccurred())
	cfg.PushAddr, cfg.PushBaseURL = addr, "http://"+addr
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 4
	}
	if cfg.HeartbeatWindow == 0 {
		cfg.HeartbeatWindow = heartbeat.DefaultWindow
	}
	ctx, cancel := context.WithCancel(logr.NewContext(context.Background(), log))
	srv, err := operator.Setup(ctx, mgr, cfg)
	g.Expect(err).NotTo(HaveOccurred())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("own manager: %v", err)
		}
		if err := startManager(); err != nil {
			t.Fatalf("restarting the suite's manager: %v", err)
		}
	})
	g.Eventually(srv.Addr).WithTimeout(30 * time.Second).ShouldNot(BeEmpty())
	g.Eventually(func() bool { return mgr.GetCache().WaitForCacheSync(ctx) }).WithTimeout(30 * time.Second).Should(BeTrue())
	suite.SetCache(mgr.GetCache()) // createMonitor waits for this cache
	return "http://" + addr
}

// send makes one request and returns its code, headers and body.
func send(t *testing.T, method, url string, hdr http.Header, body io.Reader) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	c := &http.Client{Timeout: 15 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, redact(url), err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// redact keeps tokens out of test failure messages too.
func redact(url string) string {
	if i := strings.Index(url, "/api/push/"); i >= 0 {
		return url[:i] + "/api/push/<token>"
	}
	return url
}

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func randomToken(i int) string {
	return fmt.Sprintf("%043d", i)
}
