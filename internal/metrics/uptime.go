package metrics

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/history"
)

// Names of the figures computed at scrape time from status.
const (
	MonitorUptimeName      = "pushmon_monitor_uptime_ratio"
	MonitorRunSuccessName  = "pushmon_monitor_run_success_ratio"
	MonitorRunDurationName = "pushmon_monitor_run_duration_seconds"
)

var (
	uptimeDesc = prometheus.NewDesc(MonitorUptimeName,
		"Time Up over the time counted in the window (24h, 7d, 30d), from status.uptime as of the scrape: the figure the dashboard shows. Absent before the first Up or Down. Reported by the leader only.",
		[]string{"namespace", "name", "window"}, nil)
	runSuccessDesc = prometheus.NewDesc(MonitorRunSuccessName,
		"Runs that succeeded over the runs in status.recentRuns. Absent without runs. Reported by the leader only.",
		monitorLabels, nil)
	runDurationDesc = prometheus.NewDesc(MonitorRunDurationName,
		"Nearest-rank percentile (quantile 0.5, 0.95) of the durations of the runs in status.recentRuns that had a start. Reported by the leader only.",
		[]string{"namespace", "name", "quantile"}, nil)
)

// uptimeSource is what the collector reads monitors from while this
// process leads; nil otherwise.
var uptimeSource atomic.Pointer[client.Reader]

// ServeUptime makes the uptime figures come from r (the leader's cache) from
// now on; nil stops them (leadership ended).
func ServeUptime(r client.Reader) {
	if r == nil {
		uptimeSource.Store(nil)
		return
	}
	uptimeSource.Store(&r)
}

// uptimeCollector computes the figures at scrape time, so that they are
// current at every scrape although status changes only with the state.
type uptimeCollector struct{ now func() time.Time }

func (uptimeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- uptimeDesc
	ch <- runSuccessDesc
	ch <- runDurationDesc
}

func (c uptimeCollector) Collect(ch chan<- prometheus.Metric) {
	src := uptimeSource.Load()
	if src == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var list monitoringv1alpha1.PushMonitorList
	// Read only: a copy of every monitor at every scrape was the cost of
	// this collector at 100,000 monitors.
	if err := (*src).List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		ch <- prometheus.NewInvalidMetric(uptimeDesc, err)
		return
	}
	now := c.now()
	for i := range list.Items {
		m := &list.Items[i]
		for _, w := range history.Windows {
			if f := history.Uptime(&m.Status, w, now); f.Known() {
				ch <- prometheus.MustNewConstMetric(uptimeDesc, prometheus.GaugeValue, f.Ratio, m.Namespace, m.Name, history.WindowName(w))
			}
		}
		if len(m.Status.RecentRuns) == 0 {
			continue
		}
		rs := history.Runs(m.Status.RecentRuns)
		ch <- prometheus.MustNewConstMetric(runSuccessDesc, prometheus.GaugeValue, rs.SuccessRate(), m.Namespace, m.Name)
		if rs.Timed > 0 {
			ch <- prometheus.MustNewConstMetric(runDurationDesc, prometheus.GaugeValue, rs.P50.Seconds(), m.Namespace, m.Name, "0.5")
			ch <- prometheus.MustNewConstMetric(runDurationDesc, prometheus.GaugeValue, rs.P95.Seconds(), m.Namespace, m.Name, "0.95")
		}
	}
}
