package notify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// Defaults of Options.
const (
	DefaultRetryFor       = 2 * time.Minute
	DefaultAttemptTimeout = 10 * time.Second
	maxBackoff            = 30 * time.Second
	maxErrorLength        = 1024
	// recordRetry is how soon a record that could not be written is
	// tried again.
	recordRetry = 5 * time.Second
)

// Options configures the notifier.
type Options struct {
	// RetryFor bounds how long one delivery is retried before its channel
	// turns Ready=False; it is tried again RetryFor later. DefaultRetryFor
	// when 0.
	RetryFor time.Duration
	// AttemptTimeout bounds one attempt; DefaultAttemptTimeout when 0.
	AttemptTimeout time.Duration
	// Clock is the notifier's clock; the real clock when nil.
	Clock clock.PassiveClock
	// NoClusterChannels leaves ClusterAlertChannels out (a manager that
	// watches some namespaces only has no cluster-wide read access).
	NoClusterChannels bool
}

// +kubebuilder:rbac:groups=monitoring.pushmon.dev,resources=alertchannels;clusteralertchannels,verbs=get;list;watch
// +kubebuilder:rbac:groups=monitoring.pushmon.dev,resources=alertchannels/status;clusteralertchannels/status,verbs=get;update;patch

// Setup adds the notifier (a controller over PushMonitors and a runnable
// holding its deliveries' context) and the channels' reconcilers to mgr.
// All of it runs on the leader only.
func Setup(mgr manager.Manager, opts Options) error {
	log := mgr.GetLogger().WithName("notify")
	if _, err := mgr.GetRESTMapper().RESTMapping(schema.GroupKind{Group: monitoringv1alpha1.GroupVersion.Group, Kind: "AlertChannel"}); err != nil {
		// A manager rolled out before its CRDs: without this it could never
		// start (the watch never syncs). Restarting after the CRDs are
		// applied turns notifications on.
		log.Info("AlertChannel CRD not served: notifications off until the manager restarts with it installed", "reason", err.Error())
		return nil
	}
	n := &Notifier{
		client: mgr.GetClient(), api: mgr.GetAPIReader(), opts: opts,
		sender: &Sender{}, log: log,
		events: make(chan event.GenericEvent, 1024), inflight: map[string]bool{},
		delivered: map[string]monitoringv1alpha1.ChannelNotification{}, retryAt: map[string]time.Time{},
		tests: map[string]string{}, started: make(chan struct{}),
	}
	if err := mgr.Add(n); err != nil {
		return err
	}
	toMonitors := func(cluster bool) handler.EventHandler {
		return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			var list monitoringv1alpha1.PushMonitorList
			var opts []client.ListOption
			if !cluster {
				opts = append(opts, client.InNamespace(o.GetNamespace()))
			}
			if err := n.client.List(ctx, &list, opts...); err != nil {
				n.log.Error(err, "listing monitors for a channel")
				return nil
			}
			reqs := make([]reconcile.Request, 0, len(list.Items))
			for i := range list.Items {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
			}
			return reqs
		})
	}
	b := ctrl.ControllerManagedBy(mgr).
		Named("notify").
		For(&monitoringv1alpha1.PushMonitor{}, ctrl.WithPredicates(notifyRelevant)).
		Watches(&monitoringv1alpha1.AlertChannel{}, toMonitors(false), ctrl.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Channel(n.events, &handler.EnqueueRequestForObject{}))
	if _, err := mgr.GetRESTMapper().RESTMapping(schema.GroupKind{Group: monitoringv1alpha1.GroupVersion.Group, Kind: "ClusterAlertChannel"}); err != nil {
		opts.NoClusterChannels = true
		n.opts.NoClusterChannels = true
	}
	if !opts.NoClusterChannels && !mayListClusterChannels(mgr) {
		// Bound by RoleBindings only (namespaced mode): a watch that can
		// never sync would keep the notifier from starting at all.
		n.log.Info("no cluster-wide read of ClusterAlertChannels: only AlertChannels notify")
		opts.NoClusterChannels = true
		n.opts.NoClusterChannels = true
	}
	kinds := []bool{false}
	if !opts.NoClusterChannels {
		b = b.Watches(&monitoringv1alpha1.ClusterAlertChannel{}, toMonitors(true), ctrl.WithPredicates(predicate.GenerationChangedPredicate{}))
		kinds = append(kinds, true)
	}
	if err := b.Complete(n); err != nil {
		return err
	}
	for _, cluster := range kinds {
		cr := &channelReconciler{n: n, cluster: cluster}
		var obj client.Object = &monitoringv1alpha1.AlertChannel{}
		name := "alertchannel"
		if cluster {
			obj, name = &monitoringv1alpha1.ClusterAlertChannel{}, "clusteralertchannel"
		}
		if err := ctrl.ControllerManagedBy(mgr).Named(name).For(obj).Complete(cr); err != nil {
			return err
		}
	}
	return nil
}

// mayListClusterChannels asks the API server whether this manager may list
// ClusterAlertChannels cluster-wide; when it cannot tell, it assumes so.
func mayListClusterChannels(mgr manager.Manager) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Group: monitoringv1alpha1.GroupVersion.Group, Resource: "clusteralertchannels", Verb: "watch",
		},
	}}
	if err := mgr.GetClient().Create(ctx, review); err != nil {
		return true
	}
	return review.Status.Allowed
}

// notifyRelevant lets through the monitor updates that can change what to
// send: not every heartbeat.
var notifyRelevant = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*monitoringv1alpha1.PushMonitor)
		m, ok2 := e.ObjectNew.(*monitoringv1alpha1.PushMonitor)
		if !ok1 || !ok2 {
			return true
		}
		return o.Generation != m.Generation || !equalAny(o.Labels, m.Labels) ||
			o.Annotations[monitoringv1alpha1.RunbookAnnotation] != m.Annotations[monitoringv1alpha1.RunbookAnnotation] ||
			o.Status.State != m.Status.State || !equalAny(o.Status.Incident, m.Status.Incident) ||
			!equalAny(o.Status.Notifications, m.Status.Notifications)
	},
}

// Notifier sends each monitor's notifications through its channels, one
// delivery at a time per monitor and channel, off the reconcile goroutine.
type Notifier struct {
	client client.Client
	api    client.Reader
	sender *Sender
	opts   Options
	log    logr.Logger
	events chan event.GenericEvent

	started chan struct{}
	ctx     context.Context // the leader's: deliveries end with leading

	mu       sync.Mutex
	inflight map[string]bool
	// delivered is what this leader delivered, ahead of the cache's copy
	// of status (and of status, until its record is written).
	delivered map[string]monitoringv1alpha1.ChannelNotification
	// retryAt is when a delivery that failed after its retries is tried
	// again.
	retryAt map[string]time.Time
	// tests is the test-notification value handled per channel.
	tests map[string]string
}

// Start holds the leader's context for the deliveries.
func (n *Notifier) Start(ctx context.Context) error {
	n.ctx = ctx
	close(n.started)
	<-ctx.Done()
	return nil
}

func (n *Notifier) now() time.Time {
	if n.opts.Clock != nil {
		return n.opts.Clock.Now()
	}
	return time.Now()
}

func (n *Notifier) retryFor() time.Duration {
	if n.opts.RetryFor > 0 {
		return n.opts.RetryFor
	}
	return DefaultRetryFor
}

func (n *Notifier) attemptTimeout() time.Duration {
	if n.opts.AttemptTimeout > 0 {
		return n.opts.AttemptTimeout
	}
	return DefaultAttemptTimeout
}

// target is a channel that serves a monitor.
type target struct {
	id        string
	namespace string // the Secret's namespace
	spec      monitoringv1alpha1.AlertChannelSpec
	created   time.Time
	obj       client.Object
}

// Reconcile decides, per channel of the monitor, the next notification and
// starts its delivery; it never waits for one.
func (n *Notifier) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	select {
	case <-n.started:
	default:
		return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	var m monitoringv1alpha1.PushMonitor
	if err := n.client.Get(ctx, req.NamespacedName, &m); err != nil {
		if apierrors.IsNotFound(err) {
			n.forget(req.String() + "|")
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !m.DeletionTimestamp.IsZero() || m.Spec.Suspend || m.Status.State == monitoringv1alpha1.StateSuspended || m.Status.Incident == nil {
		return reconcile.Result{}, nil
	}
	targets, err := n.targets(ctx, &m)
	if err != nil {
		return reconcile.Result{}, err
	}
	now := n.now()
	var requeue time.Duration
	later := func(at time.Time) {
		if d := at.Sub(now); d > 0 && (requeue == 0 || d < requeue) {
			requeue = d
		}
	}
	for _, t := range targets {
		if t.spec.Suspend {
			continue
		}
		key := req.String() + "|" + t.id
		n.mu.Lock()
		busy, at := n.inflight[key], n.retryAt[key]
		mem, hasMem := n.delivered[key]
		n.mu.Unlock()
		if busy {
			continue
		}
		if !at.IsZero() && now.Before(at) {
			later(at)
			continue
		}
		stored := findEntry(m.Status.Notifications, t.id)
		entry := stored
		if hasMem && (entry == nil || ahead(mem, *entry)) {
			entry = &mem
		}
		ev, reminder, due := next(m.Status.Incident, entry, t, now)
		if ev == "" && entry != nil && (stored == nil || ahead(*entry, *stored)) {
			// Delivered, but its record was not written: write it, send
			// nothing.
			n.start(key, req.NamespacedName, t, &m, "", 0)
			continue
		}
		if ev == "" {
			if !due.IsZero() {
				later(due)
			}
			continue
		}
		n.start(key, req.NamespacedName, t, &m, ev, reminder)
	}
	return reconcile.Result{RequeueAfter: requeue}, nil
}

// forget drops what this leader holds of a deleted monitor.
func (n *Notifier) forget(prefix string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k := range n.delivered {
		if strings.HasPrefix(k, prefix) {
			delete(n.delivered, k)
		}
	}
	for k := range n.retryAt {
		if strings.HasPrefix(k, prefix) {
			delete(n.retryAt, k)
		}
	}
}

// next is the notification channel t owes for incident in, given what was
// delivered (e), and when the next reminder is due otherwise.
func next(in *monitoringv1alpha1.Incident, e *monitoringv1alpha1.ChannelNotification, t target, now time.Time) (monitoringv1alpha1.NotificationEvent, int32, time.Time) {
	if e == nil || !e.IncidentStartTime.Equal(&in.StartTime) {
		if in.EndTime != nil && (in.EndState != monitoringv1alpha1.StateUp || in.EndTime.Time.Before(t.created)) {
			// Ended without a recovery to announce, or before the channel
			// existed: nothing to catch up on.
			return "", 0, time.Time{}
		}
		return monitoringv1alpha1.NotifyDown, 0, time.Time{}
	}
	if e.LastEvent == monitoringv1alpha1.NotifyRecovered {
		return "", 0, time.Time{}
	}
	if in.EndTime != nil {
		if in.EndState == monitoringv1alpha1.StateUp {
			return monitoringv1alpha1.NotifyRecovered, 0, time.Time{}
		}
		return "", 0, time.Time{}
	}
	r := t.spec.RepeatInterval
	if r == nil || r.Duration <= 0 {
		return "", 0, time.Time{}
	}
	// From the last delivery, so that a leader that was away catches up
	// with one reminder, not a burst.
	due := e.Time.Add(r.Duration)
	if now.Before(due) {
		return "", 0, due
	}
	return monitoringv1alpha1.NotifyReminder, e.Reminders + 1, time.Time{}
}

// ahead reports whether a records more of the incidents than b.
func ahead(a, b monitoringv1alpha1.ChannelNotification) bool {
	if !a.IncidentStartTime.Equal(&b.IncidentStartTime) {
		return b.IncidentStartTime.Before(&a.IncidentStartTime)
	}
	return step(a) > step(b)
}

func step(e monitoringv1alpha1.ChannelNotification) int64 {
	switch e.LastEvent {
	case monitoringv1alpha1.NotifyRecovered:
		return 1 << 40
	case monitoringv1alpha1.NotifyReminder:
		return 1 + int64(e.Reminders)
	}
	return 0
}

func findEntry(list []monitoringv1alpha1.ChannelNotification, id string) *monitoringv1alpha1.ChannelNotification {
	for i := range list {
		if list[i].Channel == id {
			e := list[i]
			return &e
		}
	}
	return nil
}

// targets are the channels that serve m: those that select it by label and
// those it names.
func (n *Notifier) targets(ctx context.Context, m *monitoringv1alpha1.PushMonitor) ([]target, error) {
	var out []target
	seen := map[string]bool{}
	add := func(t target) {
		if !seen[t.id] {
			seen[t.id] = true
			out = append(out, t)
		}
	}
	named := map[string]bool{}
	for _, ref := range m.Spec.AlertChannels {
		kind := ref.Kind
		if kind == "" {
			kind = monitoringv1alpha1.AlertChannelKindNamespaced
		}
		named[string(kind)+"/"+ref.Name] = true
	}
	var local monitoringv1alpha1.AlertChannelList
	if err := n.client.List(ctx, &local, client.InNamespace(m.Namespace)); err != nil {
		return nil, err
	}
	for i := range local.Items {
		c := &local.Items[i]
		id := string(monitoringv1alpha1.AlertChannelKindNamespaced) + "/" + c.Name
		if named[id] || selects(c.Spec.MonitorSelector, m) {
			add(target{id: id, namespace: c.Namespace, spec: c.Spec, created: c.CreationTimestamp.Time, obj: c})
		}
	}
	var cluster monitoringv1alpha1.ClusterAlertChannelList
	if n.opts.NoClusterChannels {
		return out, nil
	}
	if err := n.client.List(ctx, &cluster); err != nil {
		return nil, err
	}
	for i := range cluster.Items {
		c := &cluster.Items[i]
		id := string(monitoringv1alpha1.AlertChannelKindCluster) + "/" + c.Name
		if named[id] || selects(c.Spec.MonitorSelector, m) {
			ns := ""
			if c.Spec.SecretRef != nil {
				ns = c.Spec.SecretRef.Namespace
			}
			add(target{id: id, namespace: ns, spec: c.Spec, created: c.CreationTimestamp.Time, obj: c})
		}
	}
	return out, nil
}

func selects(sel *metav1.LabelSelector, m *monitoringv1alpha1.PushMonitor) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false
	}
	return s.Matches(labels.Set(m.Labels))
}

// channel reads the target's Secret (around the cache, which holds only
// pushmon's own Secrets) into a Channel.
func (n *Notifier) channel(ctx context.Context, id, namespace string, spec monitoringv1alpha1.AlertChannelSpec) (*Channel, error) {
	c := &Channel{ID: id, Spec: spec}
	if ref := spec.SecretRef; ref != nil {
		var s corev1.Secret
		if err := n.api.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, &s); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("secret %s/%s not found", namespace, ref.Name)
			}
			return nil, fmt.Errorf("reading secret %s/%s: %w", namespace, ref.Name, err)
		}
		c.Secret = s.Data
	}
	return c, c.Validate()
}

// start delivers ev (none: only writes the record) for the monitor through
// t in its own goroutine, then records it.
func (n *Notifier) start(key string, mon types.NamespacedName, t target, m *monitoringv1alpha1.PushMonitor, ev monitoringv1alpha1.NotificationEvent, reminder int32) {
	n.mu.Lock()
	n.inflight[key] = true
	n.mu.Unlock()
	m = m.DeepCopy()
	go func() {
		defer func() {
			n.mu.Lock()
			delete(n.inflight, key)
			n.mu.Unlock()
			// Look again: the next event may be due already.
			select {
			case n.events <- event.GenericEvent{Object: m}:
			case <-n.ctx.Done():
			}
		}()
		log := n.log.WithValues("monitor", mon.String(), "channel", t.id, "event", ev)
		entry := monitoringv1alpha1.ChannelNotification{Channel: t.id, IncidentStartTime: m.Status.Incident.StartTime, LastEvent: ev, Reminders: reminder}
		if ev == "" {
			n.mu.Lock()
			entry = n.delivered[key]
			n.mu.Unlock()
		} else {
			if ev == monitoringv1alpha1.NotifyRecovered || ev == monitoringv1alpha1.NotifyDown {
				if prev := findEntry(m.Status.Notifications, t.id); prev != nil && prev.IncidentStartTime.Equal(&entry.IncidentStartTime) {
					entry.Reminders = prev.Reminders
				}
			}
			note := FromMonitor(m, ev, reminder, n.now())
			err := n.deliver(t, &note)
			n.channelResult(t, err)
			if err != nil {
				log.Error(err, "notification not delivered; trying again later", "retryIn", n.retryFor())
				n.mu.Lock()
				n.retryAt[key] = n.now().Add(n.retryFor())
				n.mu.Unlock()
				return
			}
			log.Info("notification delivered")
			// As stored (seconds), so that record can tell it is written already.
			entry.Time = metav1.NewTime(n.now().Truncate(time.Second))
			n.mu.Lock()
			n.delivered[key] = entry
			delete(n.retryAt, key)
			n.mu.Unlock()
		}
		if err := n.record(mon, entry); err != nil {
			// Held in delivered, so never sent again by this leader; the
			// record is written on a later pass, not in a tight loop.
			log.Error(err, "recording a delivered notification in status")
			n.mu.Lock()
			n.retryAt[key] = n.now().Add(recordRetry)
			n.mu.Unlock()
		}
	}()
}

// deliver sends note through t, retrying with backoff for RetryFor.
func (n *Notifier) deliver(t target, note *Notification) error {
	deadline := time.Now().Add(n.retryFor())
	wait := time.Second
	for {
		ctx, cancel := context.WithTimeout(n.ctx, n.attemptTimeout())
		c, err := n.channel(ctx, t.id, t.namespace, t.spec)
		if err == nil {
			err = n.sender.Send(ctx, c, note)
		}
		cancel()
		if err == nil || n.ctx.Err() != nil {
			return err
		}
		if time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-time.After(wait):
		case <-n.ctx.Done():
			return n.ctx.Err()
		}
		wait = min(2*wait, maxBackoff)
	}
}

// record writes entry into the monitor's status.notifications, replacing
// the channel's entry, under optimistic locking (the reconciler writes the
// same status).
func (n *Notifier) record(mon types.NamespacedName, entry monitoringv1alpha1.ChannelNotification) error {
	for range 20 {
		var m monitoringv1alpha1.PushMonitor
		if err := n.api.Get(n.ctx, mon, &m); err != nil {
			return client.IgnoreNotFound(err)
		}
		if e := findEntry(m.Status.Notifications, entry.Channel); e != nil && equalAny(*e, entry) {
			return nil // written already (a pass that saw a stale cache)
		}
		orig := m.DeepCopy()
		list := make([]monitoringv1alpha1.ChannelNotification, 0, len(m.Status.Notifications)+1)
		for _, e := range m.Status.Notifications {
			if e.Channel != entry.Channel {
				list = append(list, e)
			}
		}
		list = append(list, entry)
		if len(list) > monitoringv1alpha1.MaxNotifications {
			list = list[len(list)-monitoringv1alpha1.MaxNotifications:]
		}
		m.Status.Notifications = list
		err := n.client.Status().Patch(n.ctx, &m, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
		if !apierrors.IsConflict(err) {
			return client.IgnoreNotFound(err)
		}
	}
	return errors.New("status kept changing")
}

// channelResult sets the channel's Ready and lastError or lastSuccessTime.
func (n *Notifier) channelResult(t target, err error) {
	n.updateChannel(t.obj, func(st *monitoringv1alpha1.AlertChannelStatus, gen int64) {
		if err != nil {
			st.LastError = limit(err.Error(), maxErrorLength)
			setReady(st, gen, metav1.ConditionFalse, monitoringv1alpha1.DeliveryFailedReason, "delivery failed: "+st.LastError)
			return
		}
		now := metav1.NewTime(n.now())
		st.LastError, st.LastSuccessTime = "", &now
		setReady(st, gen, metav1.ConditionTrue, monitoringv1alpha1.DeliveredReason, "the last notification was delivered")
	})
}

// updateChannel applies f to a fresh copy of the channel's status and
// patches it under optimistic locking.
func (n *Notifier) updateChannel(obj client.Object, f func(*monitoringv1alpha1.AlertChannelStatus, int64)) {
	for range 10 {
		fresh := obj.DeepCopyObject().(client.Object)
		if err := n.api.Get(n.ctx, client.ObjectKeyFromObject(obj), fresh); err != nil {
			return
		}
		orig := fresh.DeepCopyObject().(client.Object)
		f(channelStatus(fresh), fresh.GetGeneration())
		if equalAny(channelStatus(orig), channelStatus(fresh)) {
			return
		}
		err := n.client.Status().Patch(n.ctx, fresh, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
		if !apierrors.IsConflict(err) {
			if err != nil {
				n.log.Error(err, "updating channel status", "channel", obj.GetName())
			}
			return
		}
	}
}

func channelStatus(o client.Object) *monitoringv1alpha1.AlertChannelStatus {
	switch c := o.(type) {
	case *monitoringv1alpha1.AlertChannel:
		return &c.Status
	case *monitoringv1alpha1.ClusterAlertChannel:
		return &c.Status
	}
	panic(fmt.Sprintf("not a channel: %T", o))
}

func setReady(st *monitoringv1alpha1.AlertChannelStatus, gen int64, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: monitoringv1alpha1.ReadyCondition, Status: status,
		Reason: reason, Message: limit(msg, 32768), ObservedGeneration: gen})
}

func limit(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
