package main

import (
	"context"
	"fmt"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// scaleStep creates n monitors (interval 1m, timeout 1m, grace 30s), reports
// the time until all are Ready and each replica's memory, then pushes every
// monitor once a minute, each from its own client address, and reports the
// API writes per second and per monitor-minute in the steady state (after
// -huge-warmup, over -huge-measure, which spans a status refresh), the
// answers, and memory again.
func scaleStep(ctx context.Context, c client.WithWatch, apiReads func() map[string]float64, pushAddr string, mgrs []*replica, n int) error {
	const interval = time.Minute
	spec := monitoringv1alpha1.PushMonitorSpec{
		Interval: &metav1.Duration{Duration: interval}, Timeout: &metav1.Duration{Duration: interval},
		GracePeriod: &metav1.Duration{Duration: interval / 2}}
	fmt.Fprintf(os.Stderr, "scale step: %d monitors\n", n)
	before := apiReads()
	start := time.Now()
	_, toks, err := createMonitors(ctx, c, "scale", n, spec)
	if err != nil {
		return err
	}
	report(fmt.Sprintf("scale: %d monitors created to all Ready", n), "%v (%.0f writes/s)", time.Since(start).Round(time.Second),
		mutating(before, apiReads())/time.Since(start).Seconds())
	report(fmt.Sprintf("scale: manager memory with %d more monitors, before pushes", n), "%s", memory(mgrs))

	fmt.Fprintf(os.Stderr, "scale step: %d clients pushing once a minute (%.0f/s), %v warm-up, %v measured\n", n, float64(n)/interval.Seconds(), *hugeWarmup, *hugeMeasure)
	wc := &writeCounter{read: apiReads}
	res := realistic(pushAddr, toks, interval, *hugeWarmup, *hugeMeasure, wc.mark)
	w := wc.writes()
	printRequests("the scale step's measurement", wc.before, wc.after, 10)
	report(fmt.Sprintf("scale: %d monitors each pushed once a minute (%.0f/s), steady state", n, float64(n)/interval.Seconds()), "%s", res)
	report("scale: API writes in the steady state (mutating requests, all clients)", "%.0f in %v: %.1f/s, %.3f per monitor-minute (refresh alone: %.0f/s, %.1f per monitor-minute)",
		w, res.elapsed.Round(time.Second), w/res.elapsed.Seconds(), w/(float64(n)*res.elapsed.Minutes()),
		float64(n)/(5*time.Minute).Seconds(), 1/5.0)
	report("scale: manager memory after the pushes", "%s", memory(mgrs))
	return nil
}
