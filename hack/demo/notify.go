package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// notifyStep shows the card's own case: a monitor that goes silent is
// declared Down (HeartbeatMissed), and its alert reaches a webhook receiver
// (a local HTTP server standing in for Slack or a pager) through an
// AlertChannel, then the recovery does.
func notifyStep(root string, k func(...string) string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	got := make(chan string, 16)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p struct{ Title, Text string }
		_ = json.Unmarshal(body, &p)
		got <- fmt.Sprintf("receiver got %s: %s\n    %s\n", r.Header.Get("X-Pushmon-Event"), p.Title, strings.ReplaceAll(p.Text, "\n", "\n    "))
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	manifest := fmt.Sprintf(`apiVersion: monitoring.pushmon.dev/v1alpha1
kind: AlertChannel
metadata:
  name: demo-webhook
spec:
  type: Webhook
  address: http://%s/hook
  monitorSelector:
    matchLabels: {demo: silent}
---
apiVersion: monitoring.pushmon.dev/v1alpha1
kind: PushMonitor
metadata:
  name: silent-job
  labels: {demo: silent}
  annotations:
    monitoring.pushmon.dev/runbook-url: https://runbooks.example.com/silent-job
spec:
  timeout: 3s
  gracePeriod: 1s
`, ln.Addr())
	path := filepath.Join(root, "bin", "demo", "notify.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		return err
	}
	step("an AlertChannel (Webhook to a local receiver) and a monitor it selects, timeout 3s: kubectl apply -f bin/demo/notify.yaml",
		k("apply", "-f", path))
	waitFor(k, "silent-job", "Pending")
	raw := strings.TrimSpace(k("get", "secret", "silent-job-push", "-o", "jsonpath={.data.url}"))
	url, err := decode(raw)
	if err != nil {
		return fmt.Errorf("reading the push URL from Secret silent-job-push: %w", err)
	}
	step("one heartbeat, then silence: curl -X POST \"$URL?msg=tick\"", curl(url+"?msg=tick"))
	waitFor(k, "silent-job", "Up")
	say("no heartbeat for timeout + grace (4s) ...")
	waitFor(k, "silent-job", "Down")
	show(k)
	if err := receive(got); err != nil {
		return err
	}
	step("heartbeats again: curl -X POST \"$URL?msg=back\"", curl(url+"?msg=back"))
	waitFor(k, "silent-job", "Up")
	if err := receive(got); err != nil {
		return err
	}
	k("delete", "-f", path)
	return nil
}

func receive(got <-chan string) error {
	select {
	case s := <-got:
		fmt.Print(s)
		return nil
	case <-time.After(15 * time.Second):
		return fmt.Errorf("the webhook receiver got nothing")
	}
}
