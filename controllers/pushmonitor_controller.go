// Package controllers holds the PushMonitor reconciler. It runs on the
// elected leader only and is the one place that decides Up and Down.
package controllers

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/heartbeat"
	"github.com/pushmon/pushmon/internal/history"
	"github.com/pushmon/pushmon/internal/metrics"
)

// Event actions (events.k8s.io requires one per event).
const (
	actionIssueToken = "IssueToken"
	actionEvaluate   = "EvaluateHeartbeats"
	actionValidate   = "ValidateSpec"
)

// secretConflictRetry is how often a monitor whose Secret name is taken by a
// foreign Secret looks again (pushmon does not watch unlabeled Secrets).
const secretConflictRetry = time.Minute

// conflictRecheck is a fallback in case the newer version's watch event
// does not arrive.
const conflictRecheck = time.Second

// PushMonitorReconciler keeps a PushMonitor's token Secret, state, conditions
// and events current.
type PushMonitorReconciler struct {
	client.Client
	// APIReader reads around the cache (which holds only labeled Secrets).
	APIReader client.Reader
	Recorder  events.EventRecorder
	// PushBaseURL is the base of the url written into each Secret.
	PushBaseURL string
	// Clock is the reconciler's clock; the real clock when nil.
	Clock clock.PassiveClock
	// MaxConcurrentReconciles defaults to 1.
	MaxConcurrentReconciles int
	// TokenOverlap is how long the previous token keeps working after a
	// rotation (see secret.go); 0 ends it at once.
	TokenOverlap time.Duration
	// Live holds the heartbeats replicas relayed to this leader instead of
	// writing them (live.go); nil: every heartbeat is in status.
	Live *heartbeat.Live
	// StatusRefresh bounds how stale a stored heartbeat grows while newer
	// ones are held in Live; DefaultStatusRefresh when 0.
	StatusRefresh time.Duration

	// watchStarts holds, per monitor, when this process began watching it (or
	// last saw it resumed): the anchor that keeps a restart or failover from
	// declaring a false Down.
	watchStarts sync.Map // types.NamespacedName -> watchStart
	// leaderSince is when this process began leading (its reconciler's
	// clock, Unix nanoseconds; 0 before). Its cache watched every monitor
	// already, so that is when it began watching those that existed then,
	// however long its first reconcile of each takes.
	leaderSince atomic.Int64
	// counted holds, per monitor, the state and reason this process last
	// counted in pushmon_monitor_transitions_total, so that a reconcile of
	// a stale cached copy, which writes the same change again, does not
	// count it twice.
	counted sync.Map // types.NamespacedName -> countedHealth
}

type countedHealth struct {
	uid    types.UID
	state  monitoringv1alpha1.MonitorState
	reason string
}

type watchStart struct {
	uid types.UID
	at  time.Time
}

// +kubebuilder:rbac:groups=monitoring.pushmon.dev,resources=pushmonitors,verbs=get;list;watch
// +kubebuilder:rbac:groups=monitoring.pushmon.dev,resources=pushmonitors/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one PushMonitor's Secret and status up to date and
// requeues itself at the monitor's deadline. It has one exit: what the work
// decided is stored in one status patch, and only once it is stored are the
// monitor's metrics and events published for it.
func (r *PushMonitorReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var m monitoringv1alpha1.PushMonitor
	if err := r.Get(ctx, req.NamespacedName, &m); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	for attempt := 1; ; attempt++ {
		if !m.DeletionTimestamp.IsZero() {
			// The Secret goes with the monitor through its owner reference; its
			// series go now, since nobody can push to it any more.
			r.counted.Delete(req.NamespacedName)
			metrics.ForgetMonitor(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		result, conflict, err := r.reconcileAndStore(ctx, &m)
		if !conflict {
			return result, err
		}
		if attempt == maxStoreAttempts || r.APIReader == nil {
			// A heartbeat is stored after every read: its watch event re-runs
			// this at once. No error, so that the rate limiter's backoff does
			// not delay a Down that is due.
			ctrl.LoggerFrom(ctx).V(1).Info("status changed since read; waiting for the newer version")
			return ctrl.Result{RequeueAfter: conflictRecheck}, nil
		}
		// A heartbeat was stored after the cache's copy. Waiting for the
		// cache is not enough: under load it lags by more than the time
		// between a client's pushes, and every transition decided from it
		// would conflict again, so that a reported failure is never shown.
		// Decide again from a read around the cache (a write lands within
		// a round trip of it).
		m = monitoringv1alpha1.PushMonitor{}
		if err := r.APIReader.Get(ctx, req.NamespacedName, &m); err != nil {
			if apierrors.IsNotFound(err) {
				r.forget(req.NamespacedName)
				return ctrl.Result{}, nil
			}
			return ctrl.Result{}, err
		}
	}
}

// maxStoreAttempts bounds how often one reconcile decides again after its
// transition lost to a newer heartbeat (the first decision from the cache,
// the others from reads around it).
const maxStoreAttempts = 3

// forget drops what this process keeps for a monitor that is gone.
func (r *PushMonitorReconciler) forget(key types.NamespacedName) {
	r.watchStarts.Delete(key)
	r.counted.Delete(key)
	r.Live.Forget(key)
	metrics.ForgetMonitor(key.Namespace, key.Name)
}

// reconcileAndStore decides m's status and stores it in one patch; only once
// it is stored are the monitor's metrics and events published for it.
// conflict reports a transition that lost to a write made since m was read:
// nothing was stored or published, and m must be read again to decide.
func (r *PushMonitorReconciler) reconcileAndStore(ctx context.Context, m *monitoringv1alpha1.PushMonitor) (result ctrl.Result, conflict bool, retErr error) {
	orig := m.DeepCopy()
	now := r.now()
	var out outcome
	result, retErr = r.reconcile(ctx, orig, m, now, &out)
	setProgress(m)
	// Every transition is written only if status is unchanged since it
	// was read (optimistic locking): a heartbeat stored in the meantime
	// always wins over a missed-heartbeat Down, and a stale cached copy
	// (or a deposed leader) cannot write a transition, and emit its
	// event, again. So is a CronJob's run, whose fields pushes write too.
	transition := out.health != nil && !sameHealth(orig, *out.health)
	if err := r.patchStatus(ctx, orig, m, transition || out.runsChanged); err != nil {
		if apierrors.IsConflict(err) && out.token == tokenUnchanged {
			// Decided again from a fresh read; a token just issued is not
			// (its Secret may not be in the cache yet), it waits for the
			// watch event instead.
			return ctrl.Result{}, true, nil
		}
		if apierrors.IsConflict(err) {
			ctrl.LoggerFrom(ctx).V(1).Info("status changed since read; waiting for the newer version")
			return ctrl.Result{RequeueAfter: conflictRecheck}, false, nil
		}
		return ctrl.Result{}, false, errors.Join(retErr, err)
	}
	r.reportMetrics(orig, m, &out)
	r.emitEvents(orig, m, &out, now)
	return result, false, retErr
}

// outcome is what one reconcile decided beyond the status it set: what to
// announce once that status is stored.
type outcome struct {
	// health is the evaluated state; nil when the reconcile ended before
	// evaluating it (an invalid spec, an error).
	health *health
	// token is what happened to the push token.
	token tokenChange
	// runsChanged: a followed CronJob's runs were counted into status.
	runsChanged bool
	// readyWarning, when set, is a Ready problem newly seen.
	readyWarning *readyWarning
	// beat is the heartbeat held in memory that the evaluation counted,
	// newer than stored status; liveDeadline the deadline that follows.
	beat         *heartbeat.Beat
	liveDeadline *metav1.MicroTime
}

type readyWarning struct{ reason, action, note string }

// reconcile is Reconcile's work on m, whose status Reconcile stores.
func (r *PushMonitorReconciler) reconcile(ctx context.Context, orig, m *monitoringv1alpha1.PushMonitor, now time.Time, out *outcome) (ctrl.Result, error) {
	setBadgeKey(m)
	if reason, err := invalidSpec(m); err != nil {
		// Terminal: retrying cannot help until the spec changes.
		if r.setReady(m, metav1.ConditionFalse, reason, err.Error()) {
			out.readyWarning = &readyWarning{reason, actionValidate, err.Error()}
		}
		m.Status.ObservedGeneration = m.Generation
		return ctrl.Result{}, nil
	}

	result := ctrl.Result{}
	change, secretErr := r.reconcileSecret(ctx, m)
	out.token = change
	switch {
	case isSecretConflict(secretErr):
		if r.setReady(m, metav1.ConditionFalse, monitoringv1alpha1.SecretConflictReason, secretErr.Error()) {
			out.readyWarning = &readyWarning{monitoringv1alpha1.SecretConflictReason, actionIssueToken, secretErr.Error()}
		}
		result.RequeueAfter = secretConflictRetry
		secretErr = nil
		if m.Status.SecretName == m.DesiredSecretName() {
			// The Secret status named is no longer this monitor's: its token
			// works nowhere (token.Index refuses it), so it must not work
			// through the published digest either.
			m.Status.PushToken = nil
		}
	case secretErr != nil:
		r.setReady(m, metav1.ConditionFalse, monitoringv1alpha1.SecretErrorReason, secretErr.Error())
	default:
		name := m.DesiredSecretName()
		m.Status.SecretName = name
		r.setReady(m, metav1.ConditionTrue, monitoringv1alpha1.TokenIssuedReason, "push token issued into Secret "+name)
	}

	// With spec.cronJobRef the monitor is evaluated with the CronJob's
	// schedule, time zone and suspend, and its Jobs counted as runs.
	eval, follow, waiting := m, followed{}, ""
	if m.Spec.CronJobRef != nil {
		var err error
		if eval, follow, waiting, out.runsChanged, err = r.followCronJob(ctx, m); err != nil {
			return ctrl.Result{}, err
		}
		if waiting != "" {
			r.setReady(m, metav1.ConditionFalse, monitoringv1alpha1.CronJobNotFoundReason, waiting)
		}
	}

	var h health
	switch {
	case m.Status.SecretName == "":
		// No token anywhere: nobody can push, so there is nothing to time.
		h = health{State: monitoringv1alpha1.StatePending, Status: metav1.ConditionUnknown,
			Reason: monitoringv1alpha1.AwaitingFirstHeartbeatReason, Message: "no push token issued yet"}
	case waiting != "":
		// The CronJob's watch brings the monitor back when it appears.
		h = health{State: monitoringv1alpha1.StatePending, Status: metav1.ConditionUnknown,
			Reason: monitoringv1alpha1.AwaitingFirstHeartbeatReason, Message: "waiting for CronJob " + m.Spec.CronJobRef.Name}
	default:
		beat, held := r.heldBeat(m)
		if held && r.mustStore(m, beat, now) {
			// Its watch event brings the monitor back with the beat stored.
			return result, r.storeBeat(ctx, m, beat)
		}
		if held {
			eval = withBeat(eval, beat)
			out.beat = &beat
		}
		h = evaluateFollowing(eval, follow, now, r.watchStart(orig, now))
		if m.Spec.CronJobRef != nil {
			h = r.explainCronJob(ctx, eval, follow, h, !sameHealth(orig, h))
		}
	}
	r.applyHealth(m, h)
	if !sameHealth(orig, h) {
		// In the same (optimistically locked) write as the transition: a
		// write that loses its race records neither.
		history.AddTransition(&m.Status, monitoringv1alpha1.TransitionRecord{
			Time: metav1.NewMicroTime(now), State: h.State, Reason: h.Reason, Message: h.Message,
		}, m.HistoryLen())
		history.EnterState(&m.Status, orig.Status.State, h.State, now)
	}
	markFailureShown(orig, m, h)
	recordIncident(orig, m, h, metav1.NewMicroTime(now))
	out.health = &h
	if b := out.beat; b != nil {
		out.liveDeadline = m.Status.Deadline
		if refreshIn := r.keepInMemory(orig, m, *b, !sameHealth(orig, h), now); refreshIn > 0 && (h.RecheckAfter == 0 || refreshIn < h.RecheckAfter) {
			h.RecheckAfter = refreshIn
		}
	}
	if secretErr != nil {
		return ctrl.Result{}, secretErr
	}
	// The generation is handled only once nothing is left to retry.
	m.Status.ObservedGeneration = m.Generation
	if h.RecheckAfter > 0 && (result.RequeueAfter == 0 || h.RecheckAfter < result.RequeueAfter) {
		result.RequeueAfter = h.RecheckAfter
	}
	return result, nil
}

// watchStart is when this process began watching the monitor, reset when
// the monitor is resumed so that resuming restarts the deadline.
func (r *PushMonitorReconciler) watchStart(m *monitoringv1alpha1.PushMonitor, now time.Time) time.Time {
	key := client.ObjectKeyFromObject(m)
	resumed := m.Status.State == monitoringv1alpha1.StateSuspended && !m.Spec.Suspend
	if v, ok := r.watchStarts.Load(key); ok && !resumed {
		if ws := v.(watchStart); ws.uid == m.UID {
			return ws.at
		}
	}
	at := now
	if led := r.leaderSince.Load(); led != 0 && !resumed {
		// A monitor that existed when this leader started was watched from
		// then on (creationTimestamp has second precision: +1s keeps a
		// monitor created after that from being anchored before it was).
		since := time.Unix(0, led)
		if created := m.CreationTimestamp.Add(time.Second); created.After(since) {
			since = created
		}
		if since.Before(at) {
			at = since
		}
	}
	r.watchStarts.Store(key, watchStart{uid: m.UID, at: at})
	return at
}

// setReady sets the Ready condition and reports whether its status or
// reason changed (the moment to emit an event).
func (r *PushMonitorReconciler) setReady(m *monitoringv1alpha1.PushMonitor, status metav1.ConditionStatus, reason, msg string) bool {
	prev := meta.FindStatusCondition(m.Status.Conditions, monitoringv1alpha1.ReadyCondition)
	changed := prev == nil || prev.Status != status || prev.Reason != reason
	meta.SetStatusCondition(&m.Status.Conditions, metav1.Condition{
		Type: monitoringv1alpha1.ReadyCondition, Status: status, Reason: reason, Message: limitText(msg, maxConditionMessage),
		ObservedGeneration: m.Generation,
	})
	return changed
}

func (r *PushMonitorReconciler) applyHealth(m *monitoringv1alpha1.PushMonitor, h health) {
	m.Status.State = h.State
	if h.NextRun != nil {
		m.Status.NextRunTime = &metav1.Time{Time: *h.NextRun}
	} else {
		m.Status.NextRunTime = nil
	}
	if h.Deadline != nil {
		d := metav1.NewMicroTime(*h.Deadline)
		m.Status.Deadline = &d
	} else {
		m.Status.Deadline = nil
	}
	meta.SetStatusCondition(&m.Status.Conditions, metav1.Condition{
		Type: monitoringv1alpha1.HealthyCondition, Status: h.Status, Reason: h.Reason, Message: limitText(h.Message, maxConditionMessage),
		ObservedGeneration: m.Generation,
	})
}

// terminalReasons are the Ready reasons of a monitor that cannot work
// without a change (kstatus Failed through Stalled).
var terminalReasons = map[string]bool{
	monitoringv1alpha1.InvalidSpecReason:     true,
	monitoringv1alpha1.InvalidScheduleReason: true,
	monitoringv1alpha1.SecretConflictReason:  true,
}

// setProgress derives Stalled and Reconciling from Ready, for kstatus:
// Ready=False for a terminal reason is Stalled, for any other reason (work
// pushmon retries on its own) Reconciling; Ready=True removes both.
func setProgress(m *monitoringv1alpha1.PushMonitor) {
	ready := meta.FindStatusCondition(m.Status.Conditions, monitoringv1alpha1.ReadyCondition)
	stalled, reconciling := false, false
	if ready != nil && ready.Status != metav1.ConditionTrue {
		stalled = terminalReasons[ready.Reason]
		reconciling = !stalled
	}
	for _, c := range []struct {
		kind string
		on   bool
	}{{monitoringv1alpha1.StalledCondition, stalled}, {monitoringv1alpha1.ReconcilingCondition, reconciling}} {
		if !c.on {
			meta.RemoveStatusCondition(&m.Status.Conditions, c.kind)
			continue
		}
		meta.SetStatusCondition(&m.Status.Conditions, metav1.Condition{
			Type: c.kind, Status: metav1.ConditionTrue, Reason: ready.Reason, Message: ready.Message,
			ObservedGeneration: m.Generation,
		})
	}
}

// markFailureShown marks status.lastFailure shown when this write is a
// transition that covers it: into or out of Down (the client's failure was
// shown, or happened while the monitor was Down anyway) or Suspended (no
// alerts then, none after). Only on transitions, so that repeated down
// reports while Down cost no extra write.
func markFailureShown(orig, m *monitoringv1alpha1.PushMonitor, h health) {
	f := m.Status.LastFailure
	if f == nil || f.Shown || sameHealth(orig, h) {
		return
	}
	for _, s := range []monitoringv1alpha1.MonitorState{orig.Status.State, h.State} {
		if s == monitoringv1alpha1.StateDown || s == monitoringv1alpha1.StateSuspended {
			shown := *f
			shown.Shown = true
			m.Status.LastFailure = &shown
			return
		}
	}
}

// invalidSpec returns what is wrong with the spec, and the Ready reason for
// it: a spec the CRD would refuse (InvalidSpec), or a schedule or time zone
// the validating webhook would (InvalidSchedule).
func invalidSpec(m *monitoringv1alpha1.PushMonitor) (string, error) {
	if err := m.ValidateSpec(); err != nil {
		return monitoringv1alpha1.InvalidSpecReason, err
	}
	if _, err := m.ParsedSchedule(); err != nil {
		return monitoringv1alpha1.InvalidScheduleReason, err
	}
	return "", nil
}

// sameHealth reports whether status already shows h's state and reason.
func sameHealth(m *monitoringv1alpha1.PushMonitor, h health) bool {
	c := meta.FindStatusCondition(m.Status.Conditions, monitoringv1alpha1.HealthyCondition)
	return m.Status.State == h.State && c != nil && c.Reason == h.Reason
}

func (r *PushMonitorReconciler) patchStatus(ctx context.Context, orig, m *monitoringv1alpha1.PushMonitor, optimistic bool) error {
	if equalStatus(&orig.Status, &m.Status) {
		return nil
	}
	var patch client.Patch
	if optimistic {
		patch = client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})
	} else {
		patch = client.MergeFrom(orig)
	}
	// A monitor deleted since it was read needs no status.
	return client.IgnoreNotFound(r.Status().Patch(ctx, m, patch))
}

// emitEvents emits the events for what a reconcile stored: a Ready problem
// newly seen, the token's change, and one event per transition.
func (r *PushMonitorReconciler) emitEvents(orig, m *monitoringv1alpha1.PushMonitor, out *outcome, now time.Time) {
	if w := out.readyWarning; w != nil {
		r.Recorder.Eventf(m, nil, corev1.EventTypeWarning, w.reason, w.action, "%s", w.note)
	}
	switch out.token {
	case tokenIssued:
		if orig.Status.SecretName == m.Status.SecretName {
			r.Recorder.Eventf(m, nil, corev1.EventTypeNormal, monitoringv1alpha1.TokenIssuedReason, actionIssueToken,
				"push token issued again into Secret %s (it was deleted or held no valid token); clients need the new URL", m.Status.SecretName)
		} else {
			r.Recorder.Eventf(m, nil, corev1.EventTypeNormal, monitoringv1alpha1.TokenIssuedReason, actionIssueToken,
				"push token issued into Secret %s", m.Status.SecretName)
		}
	case tokenMoved:
		r.Recorder.Eventf(m, nil, corev1.EventTypeNormal, monitoringv1alpha1.TokenIssuedReason, actionIssueToken,
			"push token moved from Secret %s into Secret %s", orig.Status.SecretName, m.Status.SecretName)
	case tokenRotated:
		r.Recorder.Eventf(m, nil, corev1.EventTypeNormal, monitoringv1alpha1.TokenIssuedReason, actionIssueToken, "%s", r.rotatedNote(m))
	}
	h := out.health
	if h == nil || sameHealth(orig, *h) {
		return
	}
	switch {
	case h.State == monitoringv1alpha1.StateDown:
		r.Recorder.Eventf(m, nil, corev1.EventTypeWarning, h.Reason, actionEvaluate, "%s", h.Message)
	case h.State == monitoringv1alpha1.StateUp && orig.Status.State == monitoringv1alpha1.StateDown:
		r.Recorder.Eventf(m, nil, corev1.EventTypeNormal, monitoringv1alpha1.RecoveredReason, actionEvaluate, "%s", recoveredNote(orig, m, now))
	}
}

// reportMetrics publishes the stored status as gauges and counts a
// transition (a change of state or Healthy reason, as for events). Only the
// leader reconciles, so only the leader reports monitors.
func (r *PushMonitorReconciler) reportMetrics(orig, m *monitoringv1alpha1.PushMonitor, out *outcome) {
	h := out.health
	shown := &m.Status
	if b := out.beat; b != nil {
		// The metrics show the newest heartbeat, also while status waits
		// for its refresh.
		shown = m.Status.DeepCopy()
		t := metav1.NewMicroTime(b.Time)
		shown.LastHeartbeatTime, shown.LastValue, shown.Deadline = &t, b.Value, out.liveDeadline
	}
	metrics.SetMonitor(m.Namespace, m.Name, shown)
	metrics.PrepareDownCounts(m.Namespace, m.Name, downReasons(m))
	if r.Live != nil {
		metrics.SetLiveMonitors(r.Live.Len())
	}
	if h == nil || sameHealth(orig, *h) {
		return
	}
	key, now := client.ObjectKeyFromObject(m), countedHealth{uid: m.UID, state: h.State, reason: h.Reason}
	if prev, ok := r.counted.Swap(key, now); ok && prev.(countedHealth) == now {
		return
	}
	metrics.CountTransition(m.Namespace, m.Name, h.State, h.Reason)
}

// recoveredNote says how long the monitor was Down (from the Healthy
// condition's last transition, so across restarts too) and the recovering
// push's message, e.g. "heartbeats arrive again after 12m30s Down: back".
func recoveredNote(orig, m *monitoringv1alpha1.PushMonitor, now time.Time) string {
	note := "heartbeats arrive again"
	if c := meta.FindStatusCondition(orig.Status.Conditions, monitoringv1alpha1.HealthyCondition); c != nil && !c.LastTransitionTime.IsZero() {
		note += " after " + shortDuration(now.Sub(c.LastTransitionTime.Time).Round(time.Second)) + " Down"
	}
	if m.Status.LastMessage != "" {
		note += ": " + m.Status.LastMessage
	}
	return note
}

func (r *PushMonitorReconciler) now() time.Time {
	if r.Clock != nil {
		return r.Clock.Now()
	}
	return time.Now()
}

// Lead runs while this replica leads, as a runnable beside the controller
// (controller-runtime starts runnables that need leader election only on the
// leader). It notes when leading began, the watch start of every monitor
// that existed then, and when leading ends it drops the per-monitor series
// this replica can no longer keep current.
func (r *PushMonitorReconciler) Lead(ctx context.Context) error {
	r.leaderSince.Store(r.now().UnixNano())
	if r.Live != nil {
		r.Live.Lead(true)
	}
	// The uptime figures, like every per-monitor series, come from the
	// leader; computed at scrape time from its cache.
	metrics.ServeUptime(r.Client)
	<-ctx.Done()
	metrics.ServeUptime(nil)
	if r.Live != nil {
		// Beats held in this term are not written: the next leader anchors
		// every monitor at its own start (the restart rule).
		r.Live.Lead(false)
	}
	metrics.ForgetMonitors()
	return nil
}

// SetupWithManager registers the reconciler. It watches PushMonitors (spec
// and status: heartbeats arrive as status writes), the Secrets they own and
// the CronJobs, Jobs and Pods of the monitors that follow a CronJob; the
// manager's cache holds only Secrets with pushmon's labels.
func (r *PushMonitorReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&monitoringv1alpha1.PushMonitor{}).
		Owns(&corev1.Secret{}).
		Named("pushmonitor").
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1)})
	if err := setupCronJobFollowing(context.Background(), mgr, b); err != nil {
		return err
	}
	if r.Live != nil {
		b.WatchesRawSource(r.beatsEndingStates())
	}
	return b.Complete(r)
}

func equalStatus(a, b *monitoringv1alpha1.PushMonitorStatus) bool {
	return equality.Semantic.DeepEqual(a, b)
}
