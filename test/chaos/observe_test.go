package chaos

import (
	"context"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// observation is one stored version of a monitor's status, as the watch
// delivered it.
type observation struct {
	at       time.Time
	name     string
	state    monitoringv1alpha1.MonitorState
	reason   string // the Healthy condition's
	msg      string // lastMessage
	reported monitoringv1alpha1.ReportedStatus
	deadline time.Time
}

// watcher records every version of every PushMonitor in a namespace. A
// watch delivers each resourceVersion, so a Down that lasted one write is
// seen too; it resumes from the last version it saw when the connection
// drops (the API server restart), and only a "too old" version forces a
// re-list, which is counted as a gap.
type watcher struct {
	mu   sync.Mutex
	obs  []observation
	gaps []time.Time // re-lists: versions between the last seen and the list may be missed
	done chan struct{}
}

func watchMonitors(ctx context.Context, ns string) *watcher {
	w := &watcher{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		rv := ""
		for ctx.Err() == nil {
			if rv == "" {
				var list monitoringv1alpha1.PushMonitorList
				if err := k8sClient.List(ctx, &list, client.InNamespace(ns)); err != nil {
					sleep(ctx, 200*time.Millisecond)
					continue
				}
				for i := range list.Items {
					w.record(&list.Items[i])
				}
				rv = list.ResourceVersion
			}
			wi, err := k8sClient.Watch(ctx, &monitoringv1alpha1.PushMonitorList{}, client.InNamespace(ns),
				&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}})
			if err != nil {
				sleep(ctx, 200*time.Millisecond)
				continue
			}
			for ev := range wi.ResultChan() {
				switch ev.Type {
				case watch.Added, watch.Modified:
					if m, ok := ev.Object.(*monitoringv1alpha1.PushMonitor); ok {
						w.record(m)
						rv = m.ResourceVersion
					}
				case watch.Bookmark:
					if a, err := meta.Accessor(ev.Object); err == nil {
						rv = a.GetResourceVersion()
					}
				case watch.Error:
					if err := apierrors.FromObject(ev.Object); apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
						w.mu.Lock()
						w.gaps = append(w.gaps, time.Now())
						w.mu.Unlock()
						rv = ""
					}
				}
			}
			wi.Stop()
		}
	}()
	return w
}

func (w *watcher) relists() []time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Time(nil), w.gaps...)
}

func (w *watcher) record(m *monitoringv1alpha1.PushMonitor) {
	o := observation{at: time.Now(), name: m.Name, state: m.Status.State, msg: m.Status.LastMessage, reported: m.Status.LastReportedStatus}
	if c := meta.FindStatusCondition(m.Status.Conditions, monitoringv1alpha1.HealthyCondition); c != nil {
		o.reason = c.Reason
	}
	if m.Status.Deadline != nil {
		o.deadline = m.Status.Deadline.Time
	}
	w.mu.Lock()
	w.obs = append(w.obs, o)
	w.mu.Unlock()
}

// byMonitor is every observation so far, per monitor, in the order stored.
func (w *watcher) byMonitor() map[string][]observation {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string][]observation{}
	for _, o := range w.obs {
		out[o.name] = append(out[o.name], o)
	}
	return out
}

// leaseChange: the Lease's holder changed (a new leader acquired it, or
// it was released) at about this time.
type leaseChange struct {
	at     time.Time
	holder string
}

// leasePoller reads the leader election Lease every 50ms and records its
// holder's changes and when it was last seen renewed.
type leasePoller struct {
	mu      sync.Mutex
	changes []leaseChange
	renews  []time.Time // when a renewTime newer than the previous one was seen
	last    string
	lastRT  time.Time
}

func pollLease(ctx context.Context) *leasePoller {
	p := &leasePoller{}
	go func() {
		for ctx.Err() == nil {
			var l coordinationv1.Lease
			if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: leaseNS, Name: leaseName}, &l); err == nil {
				now, holder := time.Now(), ""
				if l.Spec.HolderIdentity != nil {
					holder = *l.Spec.HolderIdentity
				}
				p.mu.Lock()
				if holder != p.last {
					p.changes = append(p.changes, leaseChange{at: now, holder: holder})
					p.last = holder
				}
				if l.Spec.RenewTime != nil && l.Spec.RenewTime.After(p.lastRT) {
					p.lastRT = l.Spec.RenewTime.Time
					p.renews = append(p.renews, now)
				}
				p.mu.Unlock()
			}
			sleep(ctx, 50*time.Millisecond)
		}
	}()
	return p
}

func (p *leasePoller) holder() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

func (p *leasePoller) snapshot() (changes []leaseChange, renews []time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]leaseChange(nil), p.changes...), append([]time.Time(nil), p.renews...)
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
