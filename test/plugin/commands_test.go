package plugin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/plugin"
	"github.com/pushmon/pushmon/internal/testutil"
	"github.com/pushmon/pushmon/internal/token"
)

func TestStatus(t *testing.T) {
	g := NewWithT(t)
	ns, other := suite.NewNamespace(t), suite.NewNamespace(t)
	api, apiTok := newMonitor(t, ns, "api", monitoringv1alpha1.PushMonitorSpec{Timeout: testutil.Dur(5 * time.Minute)})
	_, _ = newMonitor(t, ns, "nightly", monitoringv1alpha1.PushMonitorSpec{Schedule: "30 2 * * *", TimeZone: ptr.To("Europe/Berlin")})
	backup, backupTok := newMonitor(t, ns, "backup", monitoringv1alpha1.PushMonitorSpec{Timeout: testutil.Dur(time.Hour)})
	_, _ = newMonitor(t, other, "queue", monitoringv1alpha1.PushMonitorSpec{})

	rs := []result{
		mustRun(t, "push", "api", "-n", ns, "--msg", "serving"),
		mustRun(t, "ping", "backup", "start", "--rid", "r1", "-n", ns),
		mustRun(t, "ping", "backup", "3", "--rid", "r1", "-n", ns, "--msg", "rsync failed"),
	}
	suite.ExpectState(t, api, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 10*time.Second)
	suite.ExpectState(t, backup, monitoringv1alpha1.StateDown, monitoringv1alpha1.RunFailedReason, 10*time.Second)

	r := mustRun(t, "status", "-n", ns)
	rs = append(rs, r)
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	g.Expect(lines).To(HaveLen(4), r.out)
	g.Expect(strings.Fields(lines[0])).To(Equal([]string{"NAME", "STATE", "REASON", "LAST", "HEARTBEAT", "NEXT", "EXPECTED", "LAST", "RUN"}))
	// Sorted by name; ages relative to now.
	g.Expect(lines[1]).To(MatchRegexp(`^api\s+Up\s+HeartbeatReceived\s+\d+s ago\s+in [45]m\d*s?\s+-\s*$`))
	g.Expect(lines[2]).To(MatchRegexp(`^backup\s+Down\s+RunFailed\s+\d+s ago\s+-\s+failed \(exit 3\) in [0-9.]+m?s\s*$`))
	g.Expect(lines[3]).To(MatchRegexp(`^nightly\s+Pending\s+AwaitingFirstHeartbeat\s+-\s+in \S+\s+-\s*$`))

	wide := mustRun(t, "status", "-n", ns, "-o", "wide")
	g.Expect(row(wide.out, "api")).To(MatchRegexp(`every 5m\s+True\s+serving\s*$`))
	g.Expect(row(wide.out, "nightly")).To(ContainSubstring("30 2 * * * Europe/Berlin"))
	g.Expect(row(wide.out, "backup")).To(MatchRegexp(`rsync failed\s*$`))

	all := mustRun(t, "status", "-A")
	g.Expect(strings.Fields(all.out)[0]).To(Equal("NAMESPACE"))
	g.Expect(row(all.out, ns, "api", "Up")).NotTo(BeEmpty(), all.out)
	g.Expect(row(all.out, other, "queue", "Pending")).NotTo(BeEmpty(), all.out)

	js := mustRun(t, "status", "-n", ns, "-o", "json")
	var list plugin.StatusList
	g.Expect(json.Unmarshal([]byte(js.out), &list)).To(Succeed())
	g.Expect(list.Items).To(HaveLen(3))
	b := list.Items[1]
	g.Expect(b.Name).To(Equal("backup"))
	g.Expect(b.LastRun).NotTo(BeNil())
	g.Expect(b.LastRun.Result).To(Equal("failed"))
	g.Expect(b.LastRun.ExitCode).To(Equal(ptr.To[int32](3)))
	g.Expect(b.LastRun.Duration).NotTo(BeNil())
	g.Expect(list.Items[2].NextExpected).NotTo(BeNil(), "the next scheduled run")

	y := mustRun(t, "status", "api", "-n", ns, "-o", "yaml")
	g.Expect(y.out).To(ContainSubstring("name: api\n"))
	g.Expect(y.out).To(ContainSubstring("state: Up\n"))

	empty := suite.NewNamespace(t)
	none := mustRun(t, "status", "-n", empty)
	g.Expect(none.out).To(BeEmpty())
	g.Expect(none.errOut).To(Equal("No PushMonitors found in " + empty + " namespace.\n"))

	rs = append(rs, wide, all, js, y)
	noToken(t, apiTok, rs...)
	noToken(t, backupTok, rs...)
}

func TestPushAndPing(t *testing.T) {
	g := NewWithT(t)
	ns := suite.NewNamespace(t)
	worker, tok := newMonitor(t, ns, "worker", monitoringv1alpha1.PushMonitorSpec{Timeout: testutil.Dur(5 * time.Minute)})
	job, jobTok := newMonitor(t, ns, "job", monitoringv1alpha1.PushMonitorSpec{Timeout: testutil.Dur(time.Hour)})

	down := mustRun(t, "push", "worker", "-n", ns, "--status", "down", "--msg", "disk full", "--value", "97.5")
	g.Expect(down.out).To(Equal("push status=down sent to " + ns + `/worker: 200 {"ok":true}` + "\n"))
	got := suite.ExpectState(t, worker, monitoringv1alpha1.StateDown, monitoringv1alpha1.DownReportedReason, 10*time.Second)
	g.Expect(got.Status.LastMessage).To(Equal("disk full"))
	g.Expect(got.Status.LastValue).To(Equal("97.5"))

	up := mustRun(t, "push", "worker", "-n", ns)
	suite.ExpectState(t, worker, monitoringv1alpha1.StateUp, monitoringv1alpha1.RecoveredReason, 10*time.Second)

	// --base-url replaces the Secret's base (a port-forward's address).
	viaBase := mustRun(t, "push", "worker", "-n", ns, "--base-url", "http://"+suite.PushAddr+"/", "--msg", "via base")
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, worker).Status.LastMessage).To(Equal("via base"))
	}).Should(Succeed())

	start := mustRun(t, "ping", "job", "start", "--rid", "r1", "-n", ns)
	g.Expect(start.out).To(Equal("ping start sent to " + ns + "/job: 200 OK\n"))
	g.Eventually(func(g Gomega) {
		runs := get(g, job).Status.OpenRuns
		g.Expect(runs).To(HaveLen(1))
		g.Expect(runs[0].RunID).To(Equal("r1"))
	}).Should(Succeed())
	fail := mustRun(t, "ping", "job", "3", "--rid", "r1", "-n", ns, "--msg", "rsync: connection reset")
	got = suite.ExpectState(t, job, monitoringv1alpha1.StateDown, monitoringv1alpha1.RunFailedReason, 10*time.Second)
	g.Expect(got.Status.OpenRuns).To(BeEmpty())
	g.Expect(got.Status.LastExitCode).To(Equal(ptr.To[int32](3)))
	g.Expect(got.Status.LastFailure).NotTo(BeNil())
	g.Expect(got.Status.LastFailure.Message).To(Equal("rsync: connection reset"))
	ok := mustRun(t, "ping", "job", "-n", ns)
	suite.ExpectState(t, job, monitoringv1alpha1.StateUp, monitoringv1alpha1.RecoveredReason, 10*time.Second)

	// A monitor that refuses POST (spec.allowedMethods) is pushed with GET.
	getOnly, getTok := newMonitor(t, ns, "get-only", monitoringv1alpha1.PushMonitorSpec{AllowedMethods: []string{http.MethodGet}})
	viaGet := mustRun(t, "push", "get-only", "-n", ns, "--msg", "by GET")
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, getOnly).Status.LastMessage).To(Equal("by GET"))
	}).Should(Succeed())
	noToken(t, getTok, viaGet)

	// Refused before anything is sent.
	bad := run(t, "push", "worker", "-n", ns, "--status", "sideways")
	g.Expect(bad.code).To(Equal(1))
	g.Expect(bad.errOut).To(Equal("error: --status \"sideways\": must be up or down\n"))
	badSignal := run(t, "ping", "job", "256", "-n", ns)
	g.Expect(badSignal.code).To(Equal(1))
	g.Expect(badSignal.errOut).To(ContainSubstring("want start, fail, log or an exit code 0-255"))

	// An endpoint that cannot be reached: the error names the base, never
	// the URL with the token (net/http's errors quote the whole URL).
	closed, err := testutil.FreeAddr()
	g.Expect(err).NotTo(HaveOccurred())
	unreachable := run(t, "push", "worker", "-n", ns, "--base-url", "http://"+closed)
	g.Expect(unreachable.code).To(Equal(1))
	g.Expect(unreachable.errOut).To(MatchRegexp(`^error: push status=up to http://` + closed + `: dial tcp .*connection refused\n$`))
	unreachablePing := run(t, "ping", "job", "start", "-n", ns, "--base-url", "http://"+closed)
	g.Expect(unreachablePing.code).To(Equal(1))
	// An ingress redirecting to https: not followed (the token would go
	// along), and the Location is printed without the token.
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://push.example.com"+r.URL.RequestURI(), http.StatusPermanentRedirect)
	}))
	defer redirector.Close()
	redirected := run(t, "push", "worker", "-n", ns, "--base-url", redirector.URL)
	g.Expect(redirected.code).To(Equal(1))
	g.Expect(redirected.errOut).To(Equal("error: push status=up to " + ns + "/worker: answered 308, a redirect to https://push.example.com/api/push/<token>?status=up (not followed: it would carry the token); use --base-url with the address it points to\n"))

	// The Secret's own URL unreachable (a laptop outside the cluster): the
	// error says how to reach the endpoint.
	suite.StopManager()
	fromOutside := run(t, "push", "worker", "-n", ns)
	g.Expect(suite.StartManager()).To(Succeed())
	g.Expect(fromOutside.code).To(Equal(1))
	g.Expect(fromOutside.errOut).To(MatchRegexp(`^error: push status=up to http://` + suite.PushAddr + `: dial tcp .*connection refused \(outside the cluster: kubectl -n pushmon-system port-forward svc/pushmon-push 8082, then --base-url http://localhost:8082\)\n$`))

	all := []result{down, up, viaBase, start, fail, ok, bad, badSignal, unreachable, unreachablePing, redirected, fromOutside}
	noToken(t, tok, all...)
	noToken(t, jobTok, all...)
	suite.AssertTokenNowhere(t, tok, get(g, worker))
}

func TestURL(t *testing.T) {
	g := NewWithT(t)
	ns := suite.NewNamespace(t)
	m, tok := newMonitor(t, ns, "web", monitoringv1alpha1.PushMonitorSpec{})
	r := mustRun(t, "url", "web", "-n", ns)
	sec := secretOf(g, m)
	g.Expect(r.out).To(Equal(string(sec.Data[token.SecretKeyURL]) + "\n"))
	g.Expect(r.out).To(Equal(suite.PushURL(tok, "") + "\n"))
	g.Expect(r.errOut).To(HavePrefix("warning: this URL contains the push token of " + ns + "/web"))
	g.Expect(r.errOut).NotTo(ContainSubstring(tok))

	p := mustRun(t, "url", "web", "-n", ns, "--ping")
	g.Expect(p.out).To(Equal("http://" + suite.PushAddr + "/ping/" + tok + "\n"))
	// The printed URL works as printed.
	resp, err := http.Post(strings.TrimSpace(p.out)+"/start", "", nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(resp.Body.Close()).To(Succeed())
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
}

func TestRotate(t *testing.T) {
	g := NewWithT(t)
	ns := suite.NewNamespace(t)
	m, old := newMonitor(t, ns, "rotating", monitoringv1alpha1.PushMonitorSpec{})

	r := mustRun(t, "rotate", "rotating", "-n", ns)
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	g.Expect(lines).To(HaveLen(2), r.out)
	g.Expect(lines[0]).To(MatchRegexp(`^token rotation requested for ` + ns + `/rotating \(monitoring.pushmon.dev/rotate-token=\S+\)$`))
	// The suite's manager runs with no overlap (--token-rotation-overlap=0).
	g.Expect(lines[1]).To(Equal("new token issued into Secret " + ns + "/rotating-push; the previous token no longer works"))

	// The API agrees: the Secret acted on the value the plugin set, and
	// holds a new token.
	req := get(g, m).Annotations[token.AnnotationRotateToken]
	g.Expect(lines[0]).To(ContainSubstring(req))
	sec := secretOf(g, m)
	g.Expect(sec.Annotations[token.AnnotationRotatedFor]).To(Equal(req))
	fresh := string(sec.Data[token.SecretKeyToken])
	g.Expect(fresh).To(MatchRegexp(testutil.TokenAlphabet.String()))
	g.Expect(fresh).NotTo(Equal(old))
	g.Eventually(func(g Gomega) {
		code, _ := suite.Push(t, http.MethodPost, fresh, "")
		g.Expect(code).To(Equal(http.StatusOK))
	}).Should(Succeed())
	g.Eventually(func(g Gomega) {
		code, _ := suite.Push(t, http.MethodPost, old, "")
		g.Expect(code).To(Equal(http.StatusNotFound))
	}).Should(Succeed(), "the previous token is refused")

	// --no-wait returns once requested; the reconciler still acts on it.
	nw := mustRun(t, "rotate", "rotating", "-n", ns, "--no-wait")
	g.Expect(strings.Count(nw.out, "\n")).To(Equal(1))
	g.Eventually(func(g Gomega) {
		want := get(g, m).Annotations[token.AnnotationRotateToken]
		g.Expect(want).NotTo(Equal(req))
		g.Expect(secretOf(g, m).Annotations[token.AnnotationRotatedFor]).To(Equal(want))
	}).Should(Succeed())
	noToken(t, old, r, nw)
	noToken(t, fresh, r, nw)
}

func TestSuspendResume(t *testing.T) {
	g := NewWithT(t)
	ns := suite.NewNamespace(t)
	m, _ := newMonitor(t, ns, "batch", monitoringv1alpha1.PushMonitorSpec{})

	r := mustRun(t, "suspend", "batch", "-n", ns)
	g.Expect(r.out).To(Equal("pushmonitor " + ns + "/batch suspended\n"))
	got := suite.ExpectState(t, m, monitoringv1alpha1.StateSuspended, monitoringv1alpha1.SuspendedReason, 10*time.Second)
	g.Expect(got.Spec.Suspend).To(BeTrue())
	g.Expect(mustRun(t, "suspend", "batch", "-n", ns).out).To(Equal("pushmonitor " + ns + "/batch already suspended\n"))
	st := mustRun(t, "status", "batch", "-n", ns)
	g.Expect(row(st.out, "batch")).To(MatchRegexp(`^batch\s+Suspended\s+Suspended\s+-\s+-\s+-\s*$`))

	r = mustRun(t, "resume", "batch", "-n", ns)
	g.Expect(r.out).To(Equal("pushmonitor " + ns + "/batch resumed\n"))
	got = suite.ExpectState(t, m, monitoringv1alpha1.StatePending, monitoringv1alpha1.AwaitingFirstHeartbeatReason, 10*time.Second)
	g.Expect(got.Spec.Suspend).To(BeFalse())
}

func TestHistory(t *testing.T) {
	g := NewWithT(t)
	ns := suite.NewNamespace(t)
	m, tok := newMonitor(t, ns, "etl", monitoringv1alpha1.PushMonitorSpec{Timeout: testutil.Dur(time.Hour)})

	empty := mustRun(t, "history", "etl", "-n", ns)
	g.Expect(empty.out).To(ContainSubstring("Last run:\n  no run reported"))
	g.Expect(empty.out).To(ContainSubstring("Last failure:\n  no failure reported\n"))

	mustRun(t, "ping", "etl", "start", "-n", ns)
	g.Eventually(func(g Gomega) { g.Expect(get(g, m).Status.OpenRuns).To(HaveLen(1)) }).Should(Succeed())
	mustRun(t, "ping", "etl", "fail", "-n", ns, "--msg", "upstream timed out")
	suite.ExpectState(t, m, monitoringv1alpha1.StateDown, monitoringv1alpha1.RunFailedReason, 10*time.Second)
	mustRun(t, "push", "etl", "-n", ns)
	suite.ExpectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.RecoveredReason, 10*time.Second)
	g.Eventually(func(g Gomega) {
		g.Expect(suite.Events(g, m, monitoringv1alpha1.RunFailedReason)).NotTo(BeEmpty())
		g.Expect(suite.Events(g, m, monitoringv1alpha1.RecoveredReason)).NotTo(BeEmpty())
	}).Should(Succeed())

	r := mustRun(t, "history", "etl", "-n", ns)
	out := r.out
	g.Expect(out).To(HavePrefix("PushMonitor " + ns + "/etl: Up (Recovered), expects every 1h\n"))
	sections := []string{"\nLast run:\n", "\nLast failure:\n", "\nEvents:\n"}
	for i, s := range sections {
		g.Expect(out).To(ContainSubstring(s))
		if i > 0 {
			g.Expect(strings.Index(out, s)).To(BeNumerically(">", strings.Index(out, sections[i-1])))
		}
	}
	failure := out[strings.Index(out, "\nLast failure:\n"):strings.Index(out, "\nEvents:\n")]
	g.Expect(failure).To(MatchRegexp(`Z \(\d+s ago\)\s+Failed\s+-\s+upstream timed out\n`))
	events := out[strings.Index(out, "\nEvents:\n"):]
	// Oldest first: issued, failed, recovered.
	iIssued, iFailed, iRecovered := strings.Index(events, "TokenIssued"), strings.Index(events, "RunFailed"), strings.Index(events, "Recovered")
	g.Expect(iIssued).To(BeNumerically(">", 0), events)
	g.Expect(iFailed).To(BeNumerically(">", iIssued), events)
	g.Expect(iRecovered).To(BeNumerically(">", iFailed), events)
	g.Expect(events).To(MatchRegexp(`Warning\s+RunFailed\s+1\s+\S`))
	noToken(t, tok, r)
}

func TestCompletion(t *testing.T) {
	g := NewWithT(t)
	ns := suite.NewNamespace(t)
	newMonitor(t, ns, "alpha", monitoringv1alpha1.PushMonitorSpec{})
	newMonitor(t, ns, "beta", monitoringv1alpha1.PushMonitorSpec{})

	// cobra's __complete is what shells (and kubectl, for plugins) call:
	// one candidate a line, "name<TAB>description", then ":<directive>".
	r := mustRun(t, "__complete", "push", "-n", ns, "")
	g.Expect(r.out).To(HavePrefix("alpha\tPending\nbeta\tPending\n:4\n"))
	r = mustRun(t, "__complete", "suspend", "-n", ns, "alpha", "")
	g.Expect(r.out).To(HavePrefix("beta\tPending\n:4\n"), "names given are not offered again")
	r = mustRun(t, "__complete", "ping", "-n", ns, "alpha", "")
	g.Expect(r.out).To(HavePrefix("start\nfail\nlog\n0\n:4\n"))
	r = mustRun(t, "__complete", "url", "-n", ns, "alpha", "")
	g.Expect(r.out).To(HavePrefix(":4\n"))
}

func TestErrors(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := suite.NewNamespace(t)
	_, tok := newMonitor(t, ns, "worker", monitoringv1alpha1.PushMonitorSpec{})

	// A monitor whose Secret name is taken by someone else's Secret gets no
	// token (Ready=False, SecretConflict).
	g.Expect(suite.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "taken"}})).To(Succeed())
	conflicted := testutil.Monitor(ns, "conflicted", monitoringv1alpha1.PushMonitorSpec{SecretName: "taken"})
	g.Expect(suite.Client.Create(ctx, conflicted)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := meta.FindStatusCondition(get(g, conflicted).Status.Conditions, monitoringv1alpha1.ReadyCondition)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(monitoringv1alpha1.SecretConflictReason))
	}).Should(Succeed())

	// alice may read PushMonitors and nothing else; bob nothing at all.
	g.Expect(suite.Client.Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pushmonitor-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{monitoringv1alpha1.GroupVersion.Group},
			Resources: []string{"pushmonitors"}, Verbs: []string{"get", "list"}}},
	})).To(Succeed())
	g.Expect(suite.Client.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "alice"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pushmonitor-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"}},
	})).To(Succeed())

	for _, tc := range []struct {
		name string
		args []string
		want string // the one line on stderr
	}{
		{"status of a missing monitor", []string{"status", "nope"}, `error: pushmonitor "nope" not found in namespace "` + ns + `"`},
		{"push to a missing monitor", []string{"push", "nope"}, `error: pushmonitor "nope" not found in namespace "` + ns + `"`},
		{"history of a missing monitor", []string{"history", "nope"}, `error: pushmonitor "nope" not found in namespace "` + ns + `"`},
		{"suspend of a missing monitor", []string{"suspend", "nope"}, `error: pushmonitor "nope" not found in namespace "` + ns + `"`},
		{"push without a token", []string{"push", "conflicted"}, `error: pushmonitor ` + ns + `/conflicted has no push token yet: Ready=False, SecretConflict: `},
		{"url without a token", []string{"url", "conflicted"}, `error: pushmonitor ` + ns + `/conflicted has no push token yet: Ready=False, SecretConflict: `},
		{"url without Secret access", []string{"url", "worker", "--as", "alice"},
			`error: forbidden: secrets "worker-push" is forbidden: User "alice" cannot get resource "secrets" in API group "" in the namespace "` + ns + `" (ask for RBAC that allows it)`},
		{"push without Secret access", []string{"push", "worker", "--as", "alice"},
			`error: forbidden: secrets "worker-push" is forbidden: User "alice" cannot get resource "secrets"`},
		{"suspend without patch rights", []string{"suspend", "worker", "--as", "alice"},
			`error: forbidden: pushmonitors.monitoring.pushmon.dev "worker" is forbidden: User "alice" cannot patch resource "pushmonitors"`},
		{"status without any rights", []string{"status", "--as", "bob"},
			`error: forbidden: pushmonitors.monitoring.pushmon.dev is forbidden: User "bob" cannot list resource "pushmonitors" in API group "monitoring.pushmon.dev" in the namespace "` + ns + `" (ask for RBAC that allows it)`},
		{"unknown output", []string{"status", "-o", "xml"}, `error: unknown output format "xml": use wide, json or yaml`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			r := run(t, append(tc.args, "-n", ns)...)
			g.Expect(r.code).To(Equal(1), r.out)
			g.Expect(r.out).To(BeEmpty())
			g.Expect(strings.Count(r.errOut, "\n")).To(Equal(1), "one line: %q", r.errOut)
			g.Expect(r.errOut).To(HavePrefix(tc.want))
			noToken(t, tok, r)
		})
	}

	// Reading what one may is not spoilt by what one may not: alice sees
	// the status, and the history without its Events.
	st := mustRun(t, "status", "-n", ns, "--as", "alice")
	g.Expect(row(st.out, "worker", "Pending")).NotTo(BeEmpty(), st.out)
	h := mustRun(t, "history", "worker", "-n", ns, "--as", "alice")
	g.Expect(h.out).To(MatchRegexp(`Events:\n  forbidden: events.events.k8s.io is forbidden: User "alice" cannot list resource "events"`))
}
