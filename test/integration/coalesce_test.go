package integration

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/heartbeat"
)

// TestHeartbeatWritesAreBounded: a burst of pushes inside one window costs a
// bounded number of writes, and the newest heartbeat of the burst is stored
// by the end of the window (nothing answered 200 is lost).
func TestHeartbeatWritesAreBounded(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	// timeout 1m: grace 6s, so the window is the default 5s.
	m := monitor(ns, "chatty", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Minute)})
	tok := createMonitor(t, m)
	mustPush(t, tok, "msg=first")
	expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 5*time.Second)
	g.Eventually(func(g Gomega) { // the reconciler's deadline write for the first push
		got := getMonitor(g, m)
		g.Expect(got.Status.Deadline.Time).To(Equal(got.Status.LastHeartbeatTime.Add(66 * time.Second)))
	}).Should(Succeed())

	var list monitoringv1alpha1.PushMonitorList
	wc, err := client.NewWithWatch(restCfg, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	w, err := wc.Watch(context.Background(), &list, client.InNamespace(ns))
	g.Expect(err).NotTo(HaveOccurred())
	defer w.Stop()
	var writes atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if ev.Type == watch.Modified {
				writes.Add(1)
			}
		}
	}()

	const pushes = 200
	start := time.Now()
	for i := range pushes {
		mustPush(t, tok, fmt.Sprintf("msg=burst-%d", i))
	}
	burst := time.Since(start)
	g.Eventually(func(g Gomega) {
		g.Expect(getMonitor(g, m).Status.LastMessage).To(Equal(fmt.Sprintf("burst-%d", pushes-1)))
	}).WithTimeout(2*heartbeat.DefaultWindow).Should(Succeed(), "the held heartbeat is written by the window's end")
	// Let the reconciler write the deadline that follows the flush.
	g.Eventually(func(g Gomega) {
		got := getMonitor(g, m)
		g.Expect(got.Status.Deadline.Time).To(Equal(got.Status.LastHeartbeatTime.Add(66 * time.Second)))
	}).Should(Succeed())
	g.Eventually(writes.Load).Should(BeNumerically(">=", 1), "the watch saw the write")
	w.Stop()
	<-done
	windows := int(burst/heartbeat.DefaultWindow) + 1
	t.Logf("%d pushes in %v cost %d status writes", pushes, burst.Round(time.Millisecond), writes.Load())
	// Per window: at most the first push (written before its answer) and
	// the held one at the window's end; while Up, each carries its deadline,
	// so the reconciler needs no write of its own (bound kept loose: 4).
	g.Expect(writes.Load()).To(BeNumerically("<=", 4*windows))
}
