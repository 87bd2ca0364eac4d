package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// The bar's colours, as the stylesheet sets them and Chromium computes them.
const (
	green = "rgb(46, 157, 82)"
	red   = "rgb(217, 63, 63)"
	grey  = "rgb(154, 160, 166)"
)

// artifactsDir is where tests keep what a person looks at afterwards
// (screenshots): $ARTIFACTS as CI systems set it, else _artifacts/ at the
// repository's root (git-ignored).
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "_artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// chromium is the browser the test drives: Debian's chromium (.ci/run
// installs it) or $CHROMIUM.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium on PATH (apt-get install chromium; .ci/run does)")
	return ""
}

// A person watching the dashboard in a real browser while a monitor goes Up,
// Down and Recovered sees its state, the bar's colours, the badge and the
// status page change; no page writes an error to the console.
func TestDashboardInABrowser(t *testing.T) {
	g := NewWithT(t)
	exe := chromium(t)
	ns := newNamespace(t)
	m := monitor(ns, "checkout", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour)})
	m.Labels = map[string]string{monitoringv1alpha1.PublicKey: "true"}
	tok := createMonitor(t, m)
	// Company for the screenshot: a job with runs, and a monitor never heard.
	backup := monitor(ns, "nightly-backup", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour)})
	backupURL := pingURL(createMonitor(t, backup))
	createMonitor(t, monitor(ns, "queue-worker", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour)}))
	for _, script := range []string{
		`curl -fsS -m 10 -o /dev/null "$URL/start"; sleep 0.4; curl -fsS -m 10 -o /dev/null "$URL/0"`,
		`curl -fsS -m 10 -o /dev/null "$URL/start"; sleep 0.2; curl -fsS -m 10 -o /dev/null --data-raw "disk full" "$URL/1"`,
		`curl -fsS -m 10 -o /dev/null "$URL/start"; sleep 0.6; curl -fsS -m 10 -o /dev/null "$URL/0"`,
	} {
		sh(t, backupURL, script)
	}

	ctx, cancel := chromedp.NewContext(context.Background(), chromedp.WithAllocatorOptions(
		chromedp.ExecPath(exe),
		// Tests run as root in containers, where Chromium's sandbox cannot
		// start.
		chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900),
	))
	defer cancel()
	ctx, stop := context.WithTimeout(ctx, 2*time.Minute)
	defer stop()
	var mu sync.Mutex
	var console []string
	messages := chromedp.Console(ctx)
	go func() {
		for msg, err := range messages {
			if err != nil {
				return
			}
			if msg.Type == chromedp.ConsoleError || msg.IsException() {
				mu.Lock()
				console = append(console, msg.String()+" at "+msg.URL)
				mu.Unlock()
			}
		}
	}()

	base := "http://" + suite.DashboardAddr
	detail := base + "/monitors/" + ns + "/checkout"
	// look loads the detail page until it shows state, from the cache that
	// follows the API within moments, and returns the bar's colours.
	look := func(state string) []string {
		t.Helper()
		var colours []string
		g.Eventually(func(g Gomega) {
			g.Expect(chromedp.Do(ctx, chromedp.Navigate(detail))).To(Succeed())
			got, err := chromedp.Run(ctx, chromedp.Text("#state"))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(state))
			colours, err = chromedp.Run(ctx, chromedp.Evaluate[[]string](
				`Array.from(document.querySelectorAll(".bar .cell:not(.empty)")).map(c => getComputedStyle(c).backgroundColor)`))
			g.Expect(err).NotTo(HaveOccurred())
		}).Should(Succeed())
		return colours
	}

	g.Expect(look("Pending")).To(Equal([]string{grey}))

	mustPush(t, tok, "msg=ok")
	g.Expect(look("Up")).To(Equal([]string{grey, green}))

	mustPush(t, tok, "status=down&msg=payment+gateway+unreachable")
	g.Expect(look("Down")).To(Equal([]string{grey, green, red}))
	reason, err := chromedp.Run(ctx, chromedp.Text("#reason"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reason).To(Equal(monitoringv1alpha1.DownReportedReason))
	msg, err := chromedp.Run(ctx, chromedp.Text("#message"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(msg).To(ContainSubstring("payment gateway unreachable"))

	mustPush(t, tok, "msg=back")
	g.Expect(look("Up")).To(Equal([]string{grey, green, red, green}))
	reason, err = chromedp.Run(ctx, chromedp.Text("#reason"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reason).To(Equal(monitoringv1alpha1.RecoveredReason))
	uptime, err := chromedp.Run(ctx, chromedp.Text(".uptime .figure"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(uptime).To(MatchRegexp(`^\d+\.\d\d%$`))
	g.Expect(uptime).NotTo(Equal("100.00%"), "it was Down a moment")
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(filepath.Join(artifactsDir(t), "dashboard-monitor.png"), shot, 0o644)).To(Succeed())

	// The list, filtered to the test's namespace.
	g.Expect(chromedp.Do(ctx, chromedp.Navigate(base+"/?namespace="+ns))).To(Succeed())
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("tr.monitor").length`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rows).To(Equal(3))
	shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(filepath.Join(artifactsDir(t), "dashboard.png"), shot, 0o644)).To(Succeed())
	g.Expect(chromedp.Do(ctx, chromedp.Navigate(base+"/?namespace="+ns+"&state=Pending"))).To(Succeed())
	rows, err = chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("tr.monitor").length`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rows).To(Equal(1), "queue-worker only")

	// The badge and the status page.
	var key string
	g.Eventually(func(g Gomega) {
		var cur monitoringv1alpha1.PushMonitor
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(m), &cur)).To(Succeed())
		key = cur.Status.BadgeKey
		g.Expect(key).NotTo(BeEmpty())
	}).Should(Succeed())
	g.Expect(key).NotTo(ContainSubstring(tok))
	g.Eventually(func(g Gomega) {
		g.Expect(chromedp.Do(ctx, chromedp.Navigate(base+"/badge/"+key+".svg"))).To(Succeed())
		fill, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelectorAll("rect")[1].getAttribute("fill")`))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(fill).To(Equal("#2e9d52"))
	}).Should(Succeed())
	label, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("title").textContent`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(label).To(HavePrefix("checkout: up · "))
	g.Expect(chromedp.Do(ctx, chromedp.Navigate(base+"/status"))).To(Succeed())
	page, err := chromedp.Run(ctx, chromedp.Text("main"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(page).To(ContainSubstring("checkout"))
	g.Expect(page).NotTo(ContainSubstring("nightly-backup"), "not opted in")
	g.Expect(page).NotTo(ContainSubstring("back"), "no messages")
	html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(html).NotTo(ContainSubstring(tok))

	mu.Lock()
	defer mu.Unlock()
	g.Expect(console).To(BeEmpty(), "console errors:\n%s", strings.Join(console, "\n"))
}
