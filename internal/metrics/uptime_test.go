package metrics

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/history"
)

func TestUptimeCollector(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	m := &monitoringv1alpha1.PushMonitor{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "job"}}
	history.EnterState(&m.Status, "", monitoringv1alpha1.StateUp, t0.Add(-10*time.Hour))
	history.EnterState(&m.Status, monitoringv1alpha1.StateUp, monitoringv1alpha1.StateDown, t0.Add(-time.Hour))
	m.Status.State = monitoringv1alpha1.StateDown
	history.AddRun(&m.Status, monitoringv1alpha1.RunRecord{EndTime: metav1.NewMicroTime(t0), Result: monitoringv1alpha1.RunFailed,
		Duration: &metav1.Duration{Duration: 2 * time.Second}}, 10)
	never := &monitoringv1alpha1.PushMonitor{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "pending"}}
	scheme := runtime.NewScheme()
	utilruntime.Must(monitoringv1alpha1.AddToScheme(scheme))
	c := uptimeCollector{now: func() time.Time { return t0 }}

	g.Expect(promtestutil.CollectAndCount(c)).To(BeZero(), "nothing while not leading")
	ServeUptime(fake.NewClientBuilder().WithScheme(scheme).WithObjects(m, never).Build())
	defer ServeUptime(nil)
	want := `
# HELP pushmon_monitor_uptime_ratio ` + "Time Up over the time counted in the window (24h, 7d, 30d), from status.uptime as of the scrape: the figure the dashboard shows. Absent before the first Up or Down. Reported by the leader only." + `
# TYPE pushmon_monitor_uptime_ratio gauge
pushmon_monitor_uptime_ratio{name="job",namespace="ns",window="24h"} 0.9
pushmon_monitor_uptime_ratio{name="job",namespace="ns",window="30d"} 0.9
pushmon_monitor_uptime_ratio{name="job",namespace="ns",window="7d"} 0.9
`
	g.Expect(promtestutil.CollectAndCompare(c, strings.NewReader(want), MonitorUptimeName)).To(Succeed())
	g.Expect(promtestutil.CollectAndCount(c, MonitorRunSuccessName)).To(Equal(1))
	g.Expect(promtestutil.CollectAndCount(c, MonitorRunDurationName)).To(Equal(2))
}
