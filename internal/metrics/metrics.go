// Package metrics defines pushmon's Prometheus metrics and registers them on
// controller-runtime's registry, so the manager's metrics endpoint serves
// them with no wiring. The push endpoint reports on every replica; the
// per-monitor series come from the reconciler, which runs on the elected
// leader only (docs/alerting.md).
//
// No label ever carries a push token: monitors are named by namespace and
// name.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// Metric names, for tests and docs.
const (
	PushRequestsName         = "pushmon_push_requests_total"
	PushDurationName         = "pushmon_push_request_duration_seconds"
	HeartbeatsName           = "pushmon_heartbeats_total"
	MonitorUpName            = "pushmon_monitor_up"
	MonitorStateName         = "pushmon_monitor_state"
	MonitorLastHeartbeatName = "pushmon_monitor_last_heartbeat_timestamp_seconds"
	MonitorDeadlineName      = "pushmon_monitor_deadline_timestamp_seconds"
	MonitorLastValueName     = "pushmon_monitor_last_value"
	MonitorTransitionsName   = "pushmon_transitions_total"
	PushConnsRefusedName     = "pushmon_push_connections_refused_total"
	RelayedName              = "pushmon_heartbeats_relayed_total"
	LiveMonitorsName         = "pushmon_live_heartbeats"
)

// States are the values of pushmon_monitor_state's state label; each monitor
// has one series, for its current state, with the value 1.
var States = []monitoringv1alpha1.MonitorState{
	monitoringv1alpha1.StatePending, monitoringv1alpha1.StateUp,
	monitoringv1alpha1.StateDown, monitoringv1alpha1.StateSuspended,
}

var monitorLabels = []string{"namespace", "name"}

var (
	pushRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: PushRequestsName,
		Help: "Requests to the push endpoint by HTTP status code, on the replica that answered them.",
	}, []string{"code"})
	// No labels: promhttp observes into a vector; one series.
	pushDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: PushDurationName,
		Help: "Time from a push request's arrival to its answer, including the heartbeat write when there is one.",
		// Answers from memory take well under a millisecond; a heartbeat
		// written before its answer costs an API round trip; 5s is the
		// write's own timeout.
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, nil)
	heartbeats = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: HeartbeatsName,
		Help: "Heartbeats accepted (answered 200) by this replica, by the status the client reported. Not per monitor: see pushmon_monitor_last_heartbeat_timestamp_seconds.",
	}, []string{"status"})
	monitorUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MonitorUpName,
		Help: "1 while the PushMonitor is Up, 0 while Down; absent while Pending or Suspended. Reported by the leader only.",
	}, monitorLabels)
	monitorState = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MonitorStateName,
		Help: "1, labelled with the PushMonitor's current state (Pending, Up, Down, Suspended); one series per monitor. Reported by the leader only.",
	}, append(monitorLabels, "state"))
	monitorLastHeartbeat = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MonitorLastHeartbeatName,
		Help: "Unix time of the PushMonitor's last stored heartbeat (status.lastHeartbeatTime); absent before the first. Reported by the leader only.",
	}, monitorLabels)
	monitorDeadline = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MonitorDeadlineName,
		Help: "Unix time of status.deadline: when the PushMonitor goes Down absent a heartbeat, or the deadline it missed; absent when it has none. Reported by the leader only.",
	}, monitorLabels)
	monitorLastValue = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MonitorLastValueName,
		Help: "The value (or ping) sent with the PushMonitor's last stored heartbeat (status.lastValue); absent when it carried none. Reported by the leader only.",
	}, monitorLabels)
	pushConnsRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: PushConnsRefusedName,
		Help: "Connections to the push endpoint closed at once by this replica because their client address already held --push-max-connections-per-address.",
	})
	relayed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: RelayedName,
		Help: "Heartbeats this replica offered to the leader's memory instead of writing them, by whether the leader took them (held) or they were recorded through the API instead (fallback).",
	}, []string{"result"})
	liveMonitors = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: LiveMonitorsName,
		Help: "Monitors whose newest heartbeat the leader holds in memory, newer than status shows. 0 on replicas that do not lead.",
	})
	monitorTransitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MonitorTransitionsName,
		Help: "Transitions of the PushMonitor's state and Healthy reason made by this leader, by the state entered (to) and its reason.",
	}, append(monitorLabels, "to", "reason"))
)

// Counters of the hot path, resolved once so that a push costs no label
// lookup.
var (
	// Labelled as the push query spells them (status=up|down).
	heartbeatsUp   = heartbeats.WithLabelValues("up")
	heartbeatsDown = heartbeats.WithLabelValues("down")
	relayedHeld    = relayed.WithLabelValues("held")
	relayedBack    = relayed.WithLabelValues("fallback")
)

func init() {
	// Every answer the push endpoint gives, created at 0 so that rate()
	// and absent() work before the first request of each kind.
	for _, code := range []int{200, 400, 404, 405, 413, 415, 429, 503} {
		pushRequests.WithLabelValues(strconv.Itoa(code))
	}
	ctrlmetrics.Registry.MustRegister(pushRequests, pushDuration, pushConnsRefused, heartbeats, relayed, liveMonitors,
		monitorUp, monitorState, monitorLastHeartbeat, monitorDeadline, monitorLastValue, monitorTransitions,
		uptimeCollector{now: time.Now})
}

// InstrumentPush counts every answer h gives by its status code and times
// it, from the request's arrival to the end of its answer.
func InstrumentPush(h http.Handler) http.Handler {
	return promhttp.InstrumentHandlerDuration(pushDuration, promhttp.InstrumentHandlerCounter(pushRequests, h))
}

// CountRelayed counts beats offered to the leader: held by it, or recorded
// through the API instead.
func CountRelayed(held, fallback int) {
	relayedHeld.Add(float64(held))
	relayedBack.Add(float64(fallback))
}

// SetLiveMonitors reports how many monitors the leader holds a beat for.
func SetLiveMonitors(n int) { liveMonitors.Set(float64(n)) }

// CountConnRefused counts one connection closed over the per-address cap.
func CountConnRefused() { pushConnsRefused.Inc() }

// CountHeartbeat counts one accepted heartbeat.
func CountHeartbeat(status monitoringv1alpha1.ReportedStatus) {
	if status == monitoringv1alpha1.ReportedDown {
		heartbeatsDown.Inc()
		return
	}
	heartbeatsUp.Inc()
}

// SetMonitor reports a PushMonitor's stored status.
func SetMonitor(namespace, name string, st *monitoringv1alpha1.PushMonitorStatus) {
	switch st.State {
	case monitoringv1alpha1.StateUp:
		monitorUp.WithLabelValues(namespace, name).Set(1)
	case monitoringv1alpha1.StateDown:
		monitorUp.WithLabelValues(namespace, name).Set(0)
	default:
		// Neither healthy nor unhealthy: a 0 would page, a 1 would hide.
		monitorUp.DeleteLabelValues(namespace, name)
	}
	// One series per monitor, for its current state: series cost memory
	// on the leader (tens of thousands of monitors), and `== 1` or `sum by
	// (state)` read the same.
	for _, s := range States {
		if s != st.State {
			monitorState.DeleteLabelValues(namespace, name, string(s))
		}
	}
	if st.State != "" {
		monitorState.WithLabelValues(namespace, name, string(st.State)).Set(1)
	}
	if t := st.LastHeartbeatTime; t != nil {
		setTime(monitorLastHeartbeat, namespace, name, t.Time)
	} else {
		monitorLastHeartbeat.DeleteLabelValues(namespace, name)
	}
	if t := st.Deadline; t != nil {
		setTime(monitorDeadline, namespace, name, t.Time)
	} else {
		monitorDeadline.DeleteLabelValues(namespace, name)
	}
	// lastValue is stored in Go's shortest float form by the push endpoint.
	if v, err := strconv.ParseFloat(st.LastValue, 64); err == nil {
		monitorLastValue.WithLabelValues(namespace, name).Set(v)
	} else {
		monitorLastValue.DeleteLabelValues(namespace, name)
	}
}

func setTime(g *prometheus.GaugeVec, namespace, name string, t time.Time) {
	g.WithLabelValues(namespace, name).Set(float64(t.UnixMicro()) / 1e6)
}

// PrepareDownCounts creates a monitor's counters of transitions to Down for
// the given reasons at 0. A counter series born at 1 shows no increase() in
// Prometheus, so without them a monitor's first Down by each reason would
// be missing from every increase() and alert on the counter.
func PrepareDownCounts(namespace, name string, reasons []string) {
	for _, reason := range reasons {
		monitorTransitions.WithLabelValues(namespace, name, string(monitoringv1alpha1.StateDown), reason)
	}
}

// CountTransition counts a change of a monitor's state or Healthy reason,
// once it is stored.
func CountTransition(namespace, name string, state monitoringv1alpha1.MonitorState, reason string) {
	monitorTransitions.WithLabelValues(namespace, name, string(state), reason).Inc()
}

// ForgetMonitor removes every series of a monitor (it was deleted).
func ForgetMonitor(namespace, name string) {
	l := prometheus.Labels{"namespace": namespace, "name": name}
	for _, v := range perMonitor {
		v.DeletePartialMatch(l)
	}
}

// ForgetMonitors removes the series of all monitors: a replica that stops
// leading no longer knows their state.
func ForgetMonitors() {
	for _, v := range perMonitor {
		v.Reset()
	}
}

var perMonitor = []*prometheus.MetricVec{monitorUp.MetricVec, monitorState.MetricVec, monitorLastHeartbeat.MetricVec,
	monitorDeadline.MetricVec, monitorLastValue.MetricVec, monitorTransitions.MetricVec}
