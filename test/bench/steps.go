package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/token"
)

// createNamespaceOfMonitors creates a namespace with n monitors of spec.
func createNamespaceOfMonitors(ctx context.Context, c client.Client, prefix string, n int, spec monitoringv1alpha1.PushMonitorSpec) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := c.Create(ctx, ns); err != nil {
		return nil, err
	}
	return ns, parallel(n, 32, func(i int) error {
		m := &monitoringv1alpha1.PushMonitor{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: fmt.Sprintf("m%05d", i)}, Spec: spec}
		return c.Create(ctx, m)
	})
}

// createMonitors creates n monitors of spec in a new namespace and returns
// the namespace and the monitors' tokens once every one is Ready (watched,
// or with poll every poll[0] when given: see pollMonitors).
func createMonitors(ctx context.Context, c client.WithWatch, prefix string, n int, spec monitoringv1alpha1.PushMonitorSpec, poll ...time.Duration) (string, []string, error) {
	ns, err := createNamespaceOfMonitors(ctx, c, prefix, n, spec)
	if err != nil {
		return "", nil, err
	}
	timeout := max(10*time.Minute, time.Duration(n)*20*time.Millisecond)
	if len(poll) > 0 {
		err = pollMonitors(ctx, c, n, timeout, poll[0], isReady, client.InNamespace(ns.Name))
	} else {
		err = waitMonitors(ctx, c, n, timeout, isReady, client.InNamespace(ns.Name))
	}
	if err != nil {
		return "", nil, err
	}
	var toks []string
	for cont := ""; ; {
		var secrets corev1.SecretList
		if err := c.List(ctx, &secrets, client.InNamespace(ns.Name), client.Limit(1000), client.Continue(cont)); err != nil {
			return "", nil, err
		}
		for _, s := range secrets.Items {
			toks = append(toks, string(s.Data[token.SecretKeyToken]))
		}
		if cont = secrets.Continue; cont == "" {
			return ns.Name, toks, nil
		}
	}
}

// isReady is a monitor whose token is issued (Ready=True).
func isReady(m *monitoringv1alpha1.PushMonitor) bool {
	return meta.IsStatusConditionTrue(m.Status.Conditions, monitoringv1alpha1.ReadyCondition)
}

// waitMonitors waits until n monitors selected by opts are done. It
// watches them rather than listing them again and again: listing thousands
// of monitors every few hundred milliseconds would load the API server
// being measured. A watch from no resourceVersion starts with the current
// state of every monitor (as ADDED events), then follows their writes; the
// API server may end a watch (under load it does: a watcher that falls
// behind is closed), and the wait then resumes from the last event seen.
// A resumed watch has been seen to stay silent although monitors changed
// (10,000 monitors, a loaded machine): after idle without an event the
// wait lists them once, in pages, and watches on from that list.
func waitMonitors(ctx context.Context, c client.WithWatch, n int, timeout time.Duration, done func(*monitoringv1alpha1.PushMonitor) bool, opts ...client.ListOption) error {
	const idle = 30 * time.Second
	seen := map[types.UID]bool{}
	giveUp := time.After(timeout)
	rv := "" // of the last event: a new watch resumes there instead of listing every monitor again
	for {
		var list monitoringv1alpha1.PushMonitorList
		watchOpts := append([]client.ListOption{}, opts...)
		if rv != "" {
			watchOpts = append(watchOpts, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
		}
		w, err := c.Watch(ctx, &list, watchOpts...)
		if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
			rv = ""
			continue
		}
		if err != nil {
			return err
		}
		ended := false
		for !ended && len(seen) < n {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok || ev.Type == watch.Error {
					if st, isStatus := ev.Object.(*metav1.Status); isStatus {
						fmt.Fprintf(os.Stderr, "  (watch error: %s)\n", st.Message)
						if st.Code == http.StatusGone {
							rv = "" // too old to resume: start from the current state
						}
					}
					ended = true
					continue
				}
				if m, isMonitor := ev.Object.(*monitoringv1alpha1.PushMonitor); isMonitor {
					rv = m.ResourceVersion
					if done(m) {
						seen[m.UID] = true
					}
				}
			case <-time.After(idle):
				fmt.Fprintf(os.Stderr, "  (no watch event for %v with %d of %d monitors done; listing them)\n", idle, len(seen), n)
				if rv, err = listDone(ctx, c, seen, done, opts...); err != nil {
					w.Stop()
					return err
				}
				ended = true
			case <-giveUp:
				w.Stop()
				return fmt.Errorf("only %d of %d monitors done after %v", len(seen), n, timeout)
			}
		}
		w.Stop()
		if len(seen) >= n {
			return nil
		}
		fmt.Fprintf(os.Stderr, "  (the watch ended with %d of %d monitors done; watching again)\n", len(seen), n)
	}
}

// deleteAllMonitors deletes every PushMonitor (one delete collection per
// namespace) and waits until the API shows none.
func deleteAllMonitors(ctx context.Context, c client.Client) error {
	var list monitoringv1alpha1.PushMonitorList
	if err := c.List(ctx, &list); err != nil {
		return err
	}
	nss := map[string]bool{}
	for _, m := range list.Items {
		nss[m.Namespace] = true
	}
	for ns := range nss {
		if err := c.DeleteAllOf(ctx, &monitoringv1alpha1.PushMonitor{}, client.InNamespace(ns)); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "deleted the %d monitors of the steps so far\n", len(list.Items))
	for deadline := time.Now().Add(2 * time.Minute); ; {
		if err := c.List(ctx, &list, client.Limit(1)); err != nil {
			return err
		}
		if len(list.Items) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("monitors still listed 2m after their delete")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pollMonitors waits until n monitors selected by opts are done, listing
// them in pages every interval. At 100,000 monitors a watch does not work
// for this: the API server's watch cache holds too few events to resume a
// watch that fell behind, and every new watch starts by sending every
// monitor, which loads the API server more than an occasional list.
func pollMonitors(ctx context.Context, c client.Client, n int, timeout, interval time.Duration, done func(*monitoringv1alpha1.PushMonitor) bool, opts ...client.ListOption) error {
	giveUp := time.Now().Add(timeout)
	for {
		seen := map[types.UID]bool{}
		if _, err := listDone(ctx, c, seen, done, opts...); err != nil {
			return err
		}
		if len(seen) >= n {
			return nil
		}
		if time.Now().After(giveUp) {
			return fmt.Errorf("only %d of %d monitors done after %v", len(seen), n, timeout)
		}
		fmt.Fprintf(os.Stderr, "  (%d of %d monitors done)\n", len(seen), n)
		time.Sleep(interval)
	}
}

// listDone adds the monitors selected by opts that are done to seen, listing
// them in pages of 500, and returns the list's resourceVersion.
func listDone(ctx context.Context, c client.Client, seen map[types.UID]bool, done func(*monitoringv1alpha1.PushMonitor) bool, opts ...client.ListOption) (string, error) {
	cont := ""
	for {
		var list monitoringv1alpha1.PushMonitorList
		if err := c.List(ctx, &list, append(append([]client.ListOption{}, opts...), client.Limit(500), client.Continue(cont))...); err != nil {
			return "", err
		}
		for i := range list.Items {
			if done(&list.Items[i]) {
				seen[list.Items[i].UID] = true
			}
		}
		if cont = list.Continue; cont == "" {
			return list.ResourceVersion, nil
		}
	}
}

func parallel(n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return err
	}
	return nil
}

// expiry creates n monitors (grace 0s), pushes each once (monitor i from
// client i's address, through pushAddr), stops, and
// returns for each how long after its deadline the API showed it Down.
func expiry(ctx context.Context, c client.WithWatch, pushAddr, prefix string, n int, timeout time.Duration) ([]time.Duration, error) {
	ns, err := createNamespaceOfMonitors(ctx, c, prefix, n,
		monitoringv1alpha1.PushMonitorSpec{Timeout: &metav1.Duration{Duration: timeout}, GracePeriod: &metav1.Duration{}})
	if err != nil {
		return nil, err
	}
	var toks []string
	for len(toks) < n {
		var secrets corev1.SecretList
		if err := c.List(ctx, &secrets, client.InNamespace(ns.Name)); err != nil {
			return nil, err
		}
		toks = toks[:0]
		for _, s := range secrets.Items {
			toks = append(toks, string(s.Data[token.SecretKeyToken]))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return downDelays(ctx, c, pushAddr, ns.Name, toks, timeout+60*time.Second)
}

// downDelays pushes every monitor of namespace ns (toks are their tokens)
// once, together, stops, and returns for each how long after its deadline
// the API showed it Down; it gives up giveUp after the pushes.
func downDelays(ctx context.Context, c client.WithWatch, pushAddr, ns string, toks []string, giveUp time.Duration) ([]time.Duration, error) {
	n := len(toks)
	if err := parallel(n, 32, func(i int) error {
		code, err := pushOnce(pushAddr, toks[i], i)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("push answered %d", code)
		}
		return err
	}); err != nil {
		return nil, err
	}
	// Watched from after the pushes (the watch starts with each monitor's
	// state): a watch opened before them fills with their heartbeat writes
	// while nobody reads it, and the API server ends it.
	var list monitoringv1alpha1.PushMonitorList
	w, err := c.Watch(ctx, &list, client.InNamespace(ns))
	if err != nil {
		return nil, err
	}
	defer func() { w.Stop() }()
	delays := map[types.UID]time.Duration{}
	timeout := time.After(giveUp)
	for len(delays) < n {
		select {
		case ev, open := <-w.ResultChan():
			if !open || ev.Type == watch.Error {
				// The API server ended the watch: watch again. The new
				// watch starts with every monitor's state; one already
				// Down counts as seen now, which overstates its delay.
				fmt.Fprintf(os.Stderr, "  (the API server ended the watch with %d of %d monitors Down; watching again)\n", len(delays), n)
				w.Stop()
				if w, err = c.Watch(ctx, &list, client.InNamespace(ns)); err != nil {
					return nil, err
				}
				continue
			}
			m, ok := ev.Object.(*monitoringv1alpha1.PushMonitor)
			// Only the Down after the push counts (not one of a monitor that
			// expired before it was pushed).
			if !ok || m.Status.State != monitoringv1alpha1.StateDown || m.Status.Deadline == nil || m.Status.LastHeartbeatTime == nil {
				continue
			}
			if _, seen := delays[m.UID]; !seen {
				delays[m.UID] = time.Since(m.Status.Deadline.Time)
			}
		case <-timeout:
			states := map[string]int{}
			if err := c.List(ctx, &list, client.InNamespace(ns)); err == nil {
				for _, m := range list.Items {
					k := string(m.Status.State)
					if m.Status.LastHeartbeatTime == nil {
						k += " (no heartbeat)"
					}
					states[k]++
				}
			}
			return nil, fmt.Errorf("only %d of %d monitors went Down after their push; their states now: %v", len(delays), n, states)
		}
	}
	out := make([]time.Duration, 0, n)
	for _, d := range delays {
		out = append(out, d.Round(time.Millisecond))
	}
	return out, nil
}

// baselinePatches is how long the API server takes for n merge patches of
// ConfigMaps from the given number of clients: the floor for n monitors
// turning Down together.
func baselinePatches(ctx context.Context, c client.Client, n, clients int) (time.Duration, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "baseline-"}}
	if err := c.Create(ctx, ns); err != nil {
		return 0, err
	}
	if err := parallel(n, clients, func(i int) error {
		return c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: fmt.Sprintf("c%05d", i)}})
	}); err != nil {
		return 0, err
	}
	start := time.Now()
	err := parallel(n, clients, func(i int) error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: fmt.Sprintf("c%05d", i)}}
		return c.Patch(ctx, cm, client.RawPatch(types.MergePatchType, []byte(`{"data":{"k":"v"}}`)))
	})
	return time.Since(start).Round(time.Millisecond), err
}

// printRequests prints, to stderr, the API requests between two readings of
// apiRequests that number at least min.
func printRequests(during string, before, after map[string]float64, min float64) {
	fmt.Fprintf(os.Stderr, "API requests during %s (all clients), by verb and resource:\n", during)
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if d := after[k] - before[k]; d >= min {
			fmt.Fprintf(os.Stderr, "  %-40s %8.0f\n", k, d)
		}
	}
}

// apiRequests reads the API server's apiserver_request_total counters,
// summed by verb and resource (subresource appended), for every client.
// The bench cannot go on without them, so a failure panics.
func apiRequests(ctx context.Context, cfg *rest.Config) map[string]float64 {
	out := map[string]float64{}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		panic(err)
	}
	body, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		panic(fmt.Sprintf("reading the API server's metrics: %v", err))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		panic(fmt.Sprintf("parsing the API server's metrics: %v", err))
	}
	f, ok := families["apiserver_request_total"]
	if !ok {
		panic("the API server's metrics lack apiserver_request_total")
	}
	for _, m := range f.GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		key := l["verb"] + " " + l["resource"]
		if l["subresource"] != "" {
			key += "/" + l["subresource"]
		}
		out[key] += m.GetCounter().GetValue()
	}
	return out
}
