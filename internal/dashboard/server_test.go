package dashboard

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/history"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func mt(d time.Duration) metav1.MicroTime { return metav1.NewMicroTime(t0.Add(d)) }

// monitor is a monitor that went Up, Down for 10m an hour ago, and Up again.
func monitor(ns, name string, secretDigest string) *monitoringv1alpha1.PushMonitor {
	m := &monitoringv1alpha1.PushMonitor{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	st := &m.Status
	for _, s := range []struct {
		at    time.Duration
		state monitoringv1alpha1.MonitorState
		why   string
	}{{-24 * time.Hour, monitoringv1alpha1.StatePending, "AwaitingFirstHeartbeat"}, {-23 * time.Hour, monitoringv1alpha1.StateUp, "HeartbeatReceived"},
		{-time.Hour, monitoringv1alpha1.StateDown, "HeartbeatMissed"}, {-50 * time.Minute, monitoringv1alpha1.StateUp, "Recovered"}} {
		history.AddTransition(st, monitoringv1alpha1.TransitionRecord{Time: mt(s.at), State: s.state, Reason: s.why, Message: "m " + s.why}, 10)
		history.EnterState(st, st.State, s.state, t0.Add(s.at))
		st.State = s.state
	}
	hb := mt(-time.Minute)
	st.LastHeartbeatTime = &hb
	st.Conditions = []metav1.Condition{{Type: monitoringv1alpha1.HealthyCondition, Status: metav1.ConditionTrue, Reason: "Recovered", Message: "heartbeats arrive again"}}
	st.PushToken = &monitoringv1alpha1.PushTokenStatus{SHA256: secretDigest}
	return m
}

func serve(t *testing.T, objs ...*monitoringv1alpha1.PushMonitor) *httptest.Server {
	t.Helper()
	scheme := runtime.NewScheme()
	utilruntime.Must(monitoringv1alpha1.AddToScheme(scheme))
	b := fake.NewClientBuilder().WithScheme(scheme).WithIndex(&monitoringv1alpha1.PushMonitor{}, BadgeKeyField, BadgeKeyOf)
	for _, o := range objs {
		b = b.WithObjects(o)
	}
	s := New(DefaultAddr, b.Build(), logr.Discard())
	s.Now = func() time.Time { return t0 }
	h, err := s.Handler()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestListAndFilters(t *testing.T) {
	g := NewWithT(t)
	digest := strings.Repeat("ab", 32)
	down := monitor("batch", "etl", digest)
	down.Status.State = monitoringv1alpha1.StateDown
	srv := serve(t, monitor("demo", "web", digest), down)

	code, body, hdr := get(t, srv.URL+"/")
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(hdr.Get("Content-Security-Policy")).To(ContainSubstring("default-src 'none'"))
	g.Expect(body).To(ContainSubstring("demo/</span>web"))
	g.Expect(body).To(ContainSubstring("batch/</span>etl"))
	g.Expect(body).NotTo(ContainSubstring(digest), "nothing of the token, not even its digest")
	// 24h: counted 23h (from the first Up), Down 10m.
	g.Expect(body).To(ContainSubstring(percent(1 - 10.0/(23*60))))
	g.Expect(strings.Count(body, `class="cell up"`)).To(Equal(4), "two monitors, two Up cells each")
	g.Expect(strings.Count(body, `class="cell down"`)).To(Equal(2))

	_, body, _ = get(t, srv.URL+"/?namespace=demo")
	g.Expect(body).To(ContainSubstring("web"))
	g.Expect(body).NotTo(ContainSubstring("batch/</span>etl"))
	_, body, _ = get(t, srv.URL+"/?state=Down")
	g.Expect(body).To(ContainSubstring("batch/</span>etl"))
	g.Expect(body).NotTo(ContainSubstring("demo/</span>web"))
	_, body, _ = get(t, srv.URL+"/?state=Suspended")
	g.Expect(body).To(ContainSubstring("No monitors match the filter."))
}

func TestDetail(t *testing.T) {
	g := NewWithT(t)
	m := monitor("batch", "backup", strings.Repeat("cd", 32))
	code := int32(3)
	history.AddRun(&m.Status, monitoringv1alpha1.RunRecord{StartTime: ptr(mt(-2 * time.Hour)), EndTime: mt(-2*time.Hour + 90*time.Second),
		Duration: &metav1.Duration{Duration: 90 * time.Second}, Result: monitoringv1alpha1.RunSucceeded}, 10)
	history.AddRun(&m.Status, monitoringv1alpha1.RunRecord{EndTime: mt(-time.Hour), Result: monitoringv1alpha1.RunFailed, ExitCode: &code,
		Message: "disk <full>", JobName: "backup-123"}, 10)
	srv := serve(t, m)

	status, body, _ := get(t, srv.URL+"/monitors/batch/backup")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring(`data-of="runs"`))
	g.Expect(body).To(ContainSubstring("1m30s"))
	g.Expect(body).To(ContainSubstring("disk &lt;full&gt;"), "messages are escaped")
	g.Expect(body).To(ContainSubstring("backup-123"))
	g.Expect(body).To(ContainSubstring("2, 50.00% succeeded"))
	g.Expect(body).To(ContainSubstring("HeartbeatMissed"))
	// Newest first in the tables.
	g.Expect(strings.Index(body, "Recovered</td>")).To(BeNumerically("<", strings.Index(body, "HeartbeatMissed</td>")))

	status, _, _ = get(t, srv.URL+"/monitors/batch/nope")
	g.Expect(status).To(Equal(http.StatusNotFound))
	status, css, _ := get(t, srv.URL+"/assets/style.css")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(css).To(ContainSubstring(".cell.down"))
}

func ptr[T any](v T) *T { return &v }

func TestShortDuration(t *testing.T) {
	g := NewWithT(t)
	g.Expect(shortDuration(10 * time.Second)).To(Equal("10s"))
	g.Expect(shortDuration(5 * time.Minute)).To(Equal("5m"))
	g.Expect(shortDuration(2 * time.Hour)).To(Equal("2h"))
	g.Expect(shortDuration(1500 * time.Millisecond)).To(Equal("1.5s"))
}

func TestStatusPageAndBadges(t *testing.T) {
	g := NewWithT(t)
	digest := strings.Repeat("ef", 32)
	pub := monitor("shop", "checkout", digest)
	pub.Labels = map[string]string{monitoringv1alpha1.PublicKey: "true"}
	pub.Status.BadgeKey = strings.Repeat("k", 32)
	pub.Status.LastMessage = "internal detail"
	private := monitor("shop", "internal-batch", digest)
	private.Status.BadgeKey = strings.Repeat("p", 32) // left over: not public any more
	srv := serve(t, pub, private)

	code, body, _ := get(t, srv.URL+"/status")
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("checkout"))
	g.Expect(body).NotTo(ContainSubstring("internal-batch"))
	g.Expect(body).NotTo(ContainSubstring("shop"), "no namespace")
	g.Expect(body).NotTo(ContainSubstring("internal detail"), "state and uptime only")
	g.Expect(body).NotTo(ContainSubstring(pub.Status.BadgeKey))
	g.Expect(body).NotTo(ContainSubstring(digest))

	code, svg, hdr := get(t, srv.URL+"/badge/"+pub.Status.BadgeKey+".svg")
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(hdr.Get("Content-Type")).To(Equal("image/svg+xml"))
	g.Expect(svg).To(ContainSubstring(`fill="#2e9d52"`))
	g.Expect(svg).To(ContainSubstring(">up · "))
	code, js, _ := get(t, srv.URL+"/badge/"+pub.Status.BadgeKey+".json")
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(js).To(ContainSubstring(`"schemaVersion":1`))
	g.Expect(js).To(ContainSubstring(`"color":"brightgreen"`))
	g.Expect(js).To(ContainSubstring(`"label":"checkout"`))

	for _, path := range []string{"/badge/" + private.Status.BadgeKey + ".svg", "/badge/" + strings.Repeat("x", 32) + ".svg", "/badge/" + pub.Status.BadgeKey + ".png"} {
		code, _, _ = get(t, srv.URL+path)
		g.Expect(code).To(Equal(http.StatusNotFound), path)
	}
}

func TestTakenPortIsNotFatal(t *testing.T) {
	g := NewWithT(t)
	taken := serve(t)
	s := New(strings.TrimPrefix(taken.URL, "http://"), nil, logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	g.Consistently(done, "200ms").ShouldNot(Receive(), "keeps running, dashboard off")
	cancel()
	g.Eventually(done).Should(Receive(BeNil()))
}
