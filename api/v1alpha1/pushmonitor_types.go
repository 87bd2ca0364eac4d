package v1alpha1

import (
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Defaults and limits that the CRD schema and the Go code share.
const (
	// DefaultTimeout is spec.timeout when unset.
	DefaultTimeout = 60 * time.Second
	// MinTimeout is the smallest spec.timeout the API accepts.
	MinTimeout = time.Second
	// MaxDuration bounds every duration in the spec (one year), so that
	// deadlines stay far from time.Time's and time.Duration's limits.
	MaxDuration = 8760 * time.Hour
	// MinDefaultGracePeriod is the floor of the default grace period.
	MinDefaultGracePeriod = time.Second
	// MaxNameLength bounds metadata.name: it is written as a label value.
	MaxNameLength = 63
	// SecretNameSuffix makes the default Secret name, <monitor-name>-push.
	SecretNameSuffix = "-push"
	// DurationPattern is the syntax the API server accepts for a duration
	// field: Go's, without sign, without day unit and without bare numbers.
	// Markers cannot refer to a Go constant, so the CEL rules below spell it
	// out at each use; TestDurationPattern fails if any copy differs.
	DurationPattern = `^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$`
)

// MonitorState is the monitor's state as status.state reports it.
// +kubebuilder:validation:Enum=Pending;Up;Down;Suspended
type MonitorState string

const (
	// StatePending: no heartbeat yet.
	StatePending MonitorState = "Pending"
	// StateUp: heartbeats arrive within timeout + grace period.
	StateUp MonitorState = "Up"
	// StateDown: a heartbeat was missed or a client reported down.
	StateDown MonitorState = "Down"
	// StateSuspended: spec.suspend is true; no Down transitions.
	StateSuspended MonitorState = "Suspended"
)

// ReportedStatus is the status a client sent with its last heartbeat.
// +kubebuilder:validation:Enum=Up;Down;Failed
type ReportedStatus string

const (
	// ReportedUp is a heartbeat with status=up (the default), or a run's
	// success.
	ReportedUp ReportedStatus = "Up"
	// ReportedDown is a heartbeat with status=down.
	ReportedDown ReportedStatus = "Down"
	// ReportedFailed is a run's failure: a /fail ping or a non-zero exit
	// status.
	ReportedFailed ReportedStatus = "Failed"
)

// PushMonitorSpec declares how long a job or service may stay silent.
//
// +kubebuilder:validation:XValidation:rule="!self.timeout.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self.timeout) >= duration('1s')",message="timeout must be at least 1s"
// +kubebuilder:validation:XValidation:rule="!self.timeout.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self.timeout) <= duration('8760h')",message="timeout must be at most 8760h (one year)"
// +kubebuilder:validation:XValidation:rule="!has(self.interval) || !self.interval.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self.interval) > duration('0s')",message="interval must be greater than 0s"
// +kubebuilder:validation:XValidation:rule="!has(self.interval) || !self.interval.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || !self.timeout.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self.interval) <= duration(self.timeout)",message="interval must not be longer than timeout"
// +kubebuilder:validation:XValidation:rule="!has(self.gracePeriod) || !self.gracePeriod.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self.gracePeriod) <= duration('8760h')",message="gracePeriod must be at most 8760h (one year)"
// +kubebuilder:validation:XValidation:rule="!has(self.timeZone) || has(self.schedule)",message="timeZone needs a schedule"
// +kubebuilder:validation:XValidation:rule="!(has(self.schedule) && has(self.cronJobRef))",message="schedule and cronJobRef exclude each other: a monitor follows its own schedule or a CronJob's"
// +kubebuilder:validation:XValidation:rule="!has(self.maxRunDuration) || !self.maxRunDuration.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self.maxRunDuration) > duration('0s')",message="maxRunDuration must be greater than 0s"
type PushMonitorSpec struct {
	// timeout is the longest silence allowed between two heartbeats, as a Go
	// duration ("90s", "5m", "1h30m"). At least 1s.
	// +optional
	// +kubebuilder:default="60s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$')",message="timeout must be a duration such as 90s, 5m or 1h30m (units: ns, us, ms, s, m, h)"
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// interval is how often clients should push. It is written into the
	// monitor's Secret (key "interval") for clients to read. Defaults to
	// timeout; must not be longer than timeout.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$')",message="interval must be a duration such as 90s, 5m or 1h30m (units: ns, us, ms, s, m, h)"
	Interval *metav1.Duration `json:"interval,omitempty"`

	// gracePeriod is extra tolerance after timeout before the monitor goes Down,
	// so that a client pushing every timeout does not flap on network jitter.
	// Unset means max(1s, timeout/10); "0s" means no grace.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$')",message="gracePeriod must be a duration such as 90s, 5m or 1h30m (units: ns, us, ms, s, m, h)"
	GracePeriod *metav1.Duration `json:"gracePeriod,omitempty"`

	// suspend stops Down transitions and alerts while true. Heartbeats are
	// still recorded; resuming restarts the deadline from the moment of resume.
	// +optional
	Suspend bool `json:"suspend,omitempty"` //nolint:kubeapilinter // unset and false both mean not suspended; DESIGN.md fixes a bool

	// secretName is the Secret the push token is issued into, in the monitor's
	// namespace. Defaults to <monitor-name>-push. pushmon never overwrites a
	// Secret it did not create.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	SecretName string `json:"secretName,omitempty"`

	// schedule is when runs are expected, in cron syntax as a Kubernetes
	// CronJob's schedule ("30 2 * * *", "@daily"). With a schedule, a run
	// (a heartbeat or a start) is expected after each scheduled time, by
	// that time + gracePeriod; timeout is not used. Validated at apply time.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Schedule string `json:"schedule,omitempty"`

	// timeZone is the IANA time zone the schedule is read in, as a
	// CronJob's spec.timeZone ("Europe/Berlin"). Defaults to UTC.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	TimeZone *string `json:"timeZone,omitempty"` //nolint:kubeapilinter // a pointer, as CronJob's spec.timeZone is

	// cronJobRef makes the monitor follow a CronJob in its namespace: its
	// schedule, time zone and suspend, with its Jobs counted as runs.
	// Excludes schedule.
	// +optional
	CronJobRef *CronJobReference `json:"cronJobRef,omitempty"`

	// maxRunDuration bounds a run from its start signal to its end; a run
	// still open after it turns the monitor Down (RunTooLong).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$')",message="maxRunDuration must be a duration such as 90s, 5m or 1h30m (units: ns, us, ms, s, m, h)"
	MaxRunDuration *metav1.Duration `json:"maxRunDuration,omitempty"`

	// failureThreshold is how many failures in a row turn the monitor Down.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	FailureThreshold int32 `json:"failureThreshold,omitempty"`

	// recoveryThreshold is how many successes in a row bring a Down monitor
	// back Up.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	RecoveryThreshold int32 `json:"recoveryThreshold,omitempty"`

	// allowedMethods limits the HTTP methods the push endpoint accepts for
	// this monitor's token. Unset allows every method the endpoint serves.
	// ["POST"] keeps link previewers and crawlers, which follow URLs with
	// GET, from sending heartbeats or down reports.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=3
	// +kubebuilder:validation:items:Enum=GET;POST;HEAD
	AllowedMethods []string `json:"allowedMethods,omitempty"`

	// historyLimit is how many finished runs (status.recentRuns) and state
	// changes (status.recentTransitions) status keeps, newest last.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=50
	HistoryLimit int32 `json:"historyLimit,omitempty"`

	// alertChannels names AlertChannels (in the monitor's namespace) or
	// ClusterAlertChannels that notify for this monitor, beside those that
	// select it by label.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	AlertChannels []AlertChannelReference `json:"alertChannels,omitempty"`
}

// MaxOpenRuns bounds status.openRuns.
const MaxOpenRuns = 16

// OpenRun is a run that reported its start and not yet its end.
type OpenRun struct {
	// runID pairs the start with its end when runs overlap (the rid query
	// parameter); absent when the client sent none.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	RunID string `json:"runID,omitempty"`
	// startTime is when the start signal arrived.
	// +required
	StartTime metav1.MicroTime `json:"startTime"` //nolint:kubeapilinter // always set; a required timestamp is a value, as metav1.Condition's lastTransitionTime
}

// FailureReport is a failure a client reported (or a followed CronJob's
// failed Job), kept so that the leader shows it as a Down even when a success
// superseded it before any leader evaluated it (a failover, a fast flap).
type FailureReport struct {
	// time is when the push endpoint received the report (or the Job ended).
	// +required
	Time metav1.MicroTime `json:"time"` //nolint:kubeapilinter // always set; a required timestamp is a value, as metav1.Condition's lastTransitionTime
	// status is what was reported: Down (status=down) or Failed (a failed
	// run).
	// +required
	Status ReportedStatus `json:"status,omitempty"`
	// message is the report's msg (length-capped), or the Job's diagnosis.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=32768
	Message string `json:"message,omitempty"`
	// exitCode is the exit status reported with it, if any.
	// +optional
	ExitCode *int32 `json:"exitCode,omitempty"`
	// shown is set by the leader once a transition covered the failure (the
	// monitor was Down or Suspended for it); a failure not shown turns the
	// monitor Down even if a success superseded it.
	// +optional
	Shown bool `json:"shown,omitempty"` //nolint:kubeapilinter // unset and false both mean not shown yet
}

// History bounds (PushMonitor.HistoryLen applies them).
const (
	// DefaultHistoryLimit is spec.historyLimit when unset.
	DefaultHistoryLimit = 10
	// MaxHistoryLimit bounds spec.historyLimit, and so status.recentRuns
	// and status.recentTransitions (their MaxItems).
	MaxHistoryLimit = 50
	// MaxHistoryMessage bounds the message a run or transition keeps: a
	// glance at what happened, the full text being in lastMessage and the
	// conditions.
	MaxHistoryMessage = 256
)

// RunResult is how a finished run ended.
// +kubebuilder:validation:Enum=Succeeded;Failed
type RunResult string

const (
	// RunSucceeded: a success signal, exit status 0, or a Job that completed.
	RunSucceeded RunResult = "Succeeded"
	// RunFailed: a /fail ping, a non-zero exit status, status=down ending a
	// run, or a Job that failed.
	RunFailed RunResult = "Failed"
)

// RunRecord is one finished run in status.recentRuns.
type RunRecord struct {
	// startTime is when the run's start signal arrived (or its Job
	// started); absent for a result reported without a start.
	// +optional
	StartTime *metav1.MicroTime `json:"startTime,omitempty"`
	// endTime is when the run's end arrived (or its Job finished).
	// +required
	EndTime metav1.MicroTime `json:"endTime"` //nolint:kubeapilinter // always set; a required timestamp is a value, as metav1.Condition's lastTransitionTime
	// duration is endTime - startTime, when the run had a start.
	// +optional
	Duration *metav1.Duration `json:"duration,omitempty"`
	// result is Succeeded or Failed.
	// +required
	Result RunResult `json:"result,omitempty"`
	// exitCode is the exit status reported (or the failed container's).
	// +optional
	ExitCode *int32 `json:"exitCode,omitempty"`
	// message is the start of the run's msg or the Job's diagnosis.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Message string `json:"message,omitempty"`
	// runID is the rid the run reported with, if any.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	RunID string `json:"runID,omitempty"`
	// jobName is the Job of the followed CronJob that was this run.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	JobName string `json:"jobName,omitempty"`
}

// TransitionRecord is one change of the monitor's state or Healthy reason
// in status.recentTransitions.
type TransitionRecord struct {
	// time is when the leader made the change.
	// +required
	Time metav1.MicroTime `json:"time"` //nolint:kubeapilinter // always set; a required timestamp is a value, as metav1.Condition's lastTransitionTime
	// state is the state entered.
	// +required
	State MonitorState `json:"state,omitempty"`
	// reason is the Healthy condition's reason from then on.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason,omitempty"`
	// message is the start of the Healthy condition's message.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Message string `json:"message,omitempty"`
}

// MaxOutages bounds status.uptime.outages.
const MaxOutages = 64

// UptimeWindow is how far back status.uptime keeps outages: the longest
// window uptime is reported for.
const UptimeWindow = 30 * 24 * time.Hour

// UptimeStatus is what uptime figures over the last 30 days are computed
// from: when the current state began and the periods Down or Suspended
// that ended within the window. It changes only with the state, in the
// write that changes it; a reader adds the current period itself.
type UptimeStatus struct {
	// since is when the monitor first turned Up or Down: the earliest time
	// uptime is counted from.
	// +optional
	Since *metav1.MicroTime `json:"since,omitempty"`
	// stateSince is when the current state began (a change of reason alone
	// does not restart it).
	// +optional
	StateSince *metav1.MicroTime `json:"stateSince,omitempty"`
	// completeSince is, when set, the start of the span outages are
	// complete for: older ones were dropped past MaxOutages, so figures
	// reach back to it at most.
	// +optional
	CompleteSince *metav1.MicroTime `json:"completeSince,omitempty"`
	// outages are the finished periods Down or Suspended that ended in the
	// last 30 days, oldest first.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Outages []Outage `json:"outages,omitempty"`
}

// Outage is a finished period in which the monitor was Down (counted as
// downtime) or Suspended (not counted at all).
type Outage struct {
	// state is Down or Suspended (a MonitorState; pushmon writes no other).
	// +required
	State MonitorState `json:"state,omitempty"`
	// start is when the period began.
	// +required
	Start metav1.MicroTime `json:"start"` //nolint:kubeapilinter // always set; a required timestamp is a value, as metav1.Condition's lastTransitionTime
	// end is when it ended.
	// +required
	End metav1.MicroTime `json:"end"` //nolint:kubeapilinter // always set; a required timestamp is a value, as metav1.Condition's lastTransitionTime
}

// CronJobReference names a CronJob in the monitor's namespace.
type CronJobReference struct {
	// name of the CronJob.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=52
	Name string `json:"name,omitempty"`
}

// PushMonitorStatus is what pushmon observed of the monitor.
type PushMonitorStatus struct {
	// state is Pending (no heartbeat yet), Up, Down or Suspended.
	// +optional
	State MonitorState `json:"state,omitempty"`

	// lastHeartbeatTime is when the push endpoint received the last heartbeat.
	// +optional
	LastHeartbeatTime *metav1.MicroTime `json:"lastHeartbeatTime,omitempty"`

	// lastReportedStatus is the status sent with the last heartbeat.
	// +optional
	LastReportedStatus ReportedStatus `json:"lastReportedStatus,omitempty"`

	// lastMessage is the msg sent with the last heartbeat (length-capped),
	// or a failed Job's diagnosis.
	// +optional
	// +kubebuilder:validation:MaxLength=32768
	LastMessage string `json:"lastMessage,omitempty"` //nolint:kubeapilinter // "" is no msg; the push endpoint writes it so in a JSON patch

	// lastValue is the numeric value sent with the last heartbeat, in Go's
	// shortest decimal form (42.50 is stored as 42.5, 1e3 as 1000).
	// +optional
	// +kubebuilder:validation:MaxLength=32
	LastValue string `json:"lastValue,omitempty"` //nolint:kubeapilinter // "" is no value; the push endpoint writes it so in a JSON patch

	// lastFailure is the newest failure reported (status=down, a failed run
	// or Job), kept after later successes and whatever order replicas
	// stored it in.
	// +optional
	LastFailure *FailureReport `json:"lastFailure,omitempty"`

	// deadline is when the monitor goes Down absent a heartbeat. While Down
	// because a heartbeat was missed, it is the deadline that was missed.
	// +optional
	Deadline *metav1.MicroTime `json:"deadline,omitempty"`

	// secretName is the Secret that holds the monitor's current push token.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName,omitempty"`

	// nextRunTime is when the next run is expected (with a schedule).
	// +optional
	NextRunTime *metav1.Time `json:"nextRunTime,omitempty"`

	// lastStartTime is when the last run started (a start signal).
	// +optional
	LastStartTime *metav1.MicroTime `json:"lastStartTime,omitempty"`

	// lastRunJob is the last Job of the followed CronJob counted as a run
	// (with spec.cronJobRef).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	LastRunJob string `json:"lastRunJob,omitempty"`

	// lastRunDuration is how long the last finished run took, from its
	// start signal to its end.
	// +optional
	LastRunDuration *metav1.Duration `json:"lastRunDuration,omitempty"`

	// lastExitCode is the exit status the last run reported, if any.
	// +optional
	LastExitCode *int32 `json:"lastExitCode,omitempty"`

	// consecutiveFailures counts failures since the last success.
	// +optional
	ConsecutiveFailures int32 `json:"consecutiveFailures,omitempty"` //nolint:kubeapilinter // unset and 0 mean the same

	// consecutiveSuccesses counts successes since the last failure.
	// +optional
	ConsecutiveSuccesses int32 `json:"consecutiveSuccesses,omitempty"` //nolint:kubeapilinter // unset and 0 mean the same

	// openRuns are the runs started and not yet finished, oldest first
	// (at most MaxOpenRuns; older ones are dropped).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	OpenRuns []OpenRun `json:"openRuns,omitempty"`

	// recentRuns are the last finished runs, oldest first, at most
	// spec.historyLimit. Each is written in the status write that records
	// the run's end.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=50
	RecentRuns []RunRecord `json:"recentRuns,omitempty"`

	// recentTransitions are the last changes of state (or Healthy reason),
	// oldest first, at most spec.historyLimit. Each is written in the status
	// write that makes the change.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=50
	RecentTransitions []TransitionRecord `json:"recentTransitions,omitempty"`

	// uptime holds what uptime over 24h, 7d and 30d is computed from.
	// +optional
	Uptime *UptimeStatus `json:"uptime,omitempty"`

	// badgeKey is the key of the monitor's status badge
	// (/badge/<badgeKey>.svg on the dashboard's port), issued while the
	// monitor carries the label monitoring.pushmon.dev/public=true: random,
	// unrelated to the push token, and it shows the state only.
	// +optional
	// +kubebuilder:validation:MinLength=32
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	BadgeKey string `json:"badgeKey,omitempty"`

	// tokenIssuedTime is when the current push token was issued (never the
	// token itself).
	// +optional
	TokenIssuedTime *metav1.Time `json:"tokenIssuedTime,omitempty"`

	// pushToken identifies the push tokens that work now by their SHA-256
	// digests (never the tokens), so that a push tier without access to
	// Secrets can look a token up.
	// +optional
	PushToken *PushTokenStatus `json:"pushToken,omitempty"`

	// incident is the current or last Down period, which notifications
	// announce.
	// +optional
	Incident *Incident `json:"incident,omitempty"`

	// notifications records, per alert channel, what it delivered of the
	// incident, so that a new leader neither repeats nor skips one.
	// +optional
	// +listType=map
	// +listMapKey=channel
	// +kubebuilder:validation:MaxItems=32
	Notifications []ChannelNotification `json:"notifications,omitempty"`

	// observedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"` //nolint:kubeapilinter // unset and 0 mean nothing reconciled yet, as everywhere in Kubernetes

	// conditions are Ready (token issued, endpoint serving), Healthy (Up),
	// and Stalled and Reconciling for kstatus.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// PushMonitor declares a job or service that must push heartbeats to pushmon,
// and how long it may stay silent before pushmon reports it Down.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pm,categories=pushmon
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Last Heartbeat",type=date,JSONPath=`.status.lastHeartbeatTime`
// +kubebuilder:printcolumn:name="Timeout",type=string,JSONPath=`.spec.timeout`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.lastMessage`,priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Healthy")].reason`,priority=1
// +kubebuilder:printcolumn:name="Next Run",type=string,JSONPath=`.status.nextRunTime`,priority=1
// +kubebuilder:printcolumn:name="Last Run",type=string,JSONPath=`.status.lastRunDuration`,priority=1
// +kubebuilder:printcolumn:name="Exit",type=integer,JSONPath=`.status.lastExitCode`,priority=1
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="metadata.name must be at most 63 characters (it is written into a label value)"
type PushMonitor struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's standard metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the monitor.
	// +required
	Spec PushMonitorSpec `json:"spec"` //nolint:kubeapilinter // a value, as in every Kubernetes type; {} is a valid spec (all defaults)

	// status is what pushmon observed.
	// +optional
	Status PushMonitorStatus `json:"status,omitempty"` //nolint:kubeapilinter // a value, as in every Kubernetes type: its zero value is a new monitor's status
}

// +kubebuilder:object:root=true

// PushMonitorList is a list of PushMonitors.
type PushMonitorList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PushMonitor `json:"items"`
}

// HistoryLen is spec.historyLimit, defaulted and bounded: how many runs
// and transitions status keeps.
func (m *PushMonitor) HistoryLen() int {
	switch n := m.Spec.HistoryLimit; {
	case n <= 0:
		return DefaultHistoryLimit
	case n > MaxHistoryLimit:
		return MaxHistoryLimit
	default:
		return int(n)
	}
}

// TimeoutDuration is spec.timeout, defaulted.
func (m *PushMonitor) TimeoutDuration() time.Duration {
	if m.Spec.Timeout == nil || m.Spec.Timeout.Duration <= 0 {
		return DefaultTimeout
	}
	return m.Spec.Timeout.Duration
}

// IntervalDuration is spec.interval, defaulted to the timeout.
func (m *PushMonitor) IntervalDuration() time.Duration {
	if m.Spec.Interval == nil || m.Spec.Interval.Duration <= 0 {
		return m.TimeoutDuration()
	}
	return m.Spec.Interval.Duration
}

// GracePeriodDuration is spec.gracePeriod, defaulted to max(1s, timeout/10),
// or with a schedule to DefaultScheduleGracePeriod.
func (m *PushMonitor) GracePeriodDuration() time.Duration {
	if m.Spec.GracePeriod != nil {
		return max(m.Spec.GracePeriod.Duration, 0)
	}
	if m.Spec.Schedule != "" {
		return DefaultScheduleGracePeriod
	}
	return max(MinDefaultGracePeriod, m.TimeoutDuration()/10)
}

// DeadlineFrom is when the monitor goes Down if nothing is heard after
// anchor: anchor + timeout + grace, or with a schedule the first scheduled
// time after anchor + grace. (An unparsable schedule falls back to the
// timeout; the reconciler reports it as InvalidSchedule.)
func (m *PushMonitor) DeadlineFrom(anchor time.Time) time.Time {
	if next, ok := m.NextRunAfter(anchor); ok {
		return next.Add(m.GracePeriodDuration())
	}
	return anchor.Add(m.TimeoutDuration() + m.GracePeriodDuration())
}

// PushTokenStatus names the push tokens that work now by their digests.
type PushTokenStatus struct {
	// sha256 is the lowercase hex SHA-256 digest of the current token.
	// +required
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{64}$`
	// +kubebuilder:validation:MinLength=64
	// +kubebuilder:validation:MaxLength=64
	SHA256 string `json:"sha256,omitempty"`

	// previousSHA256 is the digest of the token the last rotation replaced,
	// which keeps working until previousExpireTime.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{64}$`
	// +kubebuilder:validation:MinLength=64
	// +kubebuilder:validation:MaxLength=64
	PreviousSHA256 string `json:"previousSHA256,omitempty"`

	// previousExpireTime is when the previous token stops working.
	// +optional
	PreviousExpireTime *metav1.Time `json:"previousExpireTime,omitempty"`
}

// DesiredSecretName is spec.secretName, defaulted to <monitor-name>-push.
func (m *PushMonitor) DesiredSecretName() string {
	if m.Spec.SecretName != "" {
		return m.Spec.SecretName
	}
	return m.Name + SecretNameSuffix
}

// ValidateSpec repeats the CRD's validation in Go, so that a spec that reached
// the reconciler some other way (an older CRD, a disabled validation) is caught
// as a terminal error instead of misbehaving.
func (m *PushMonitor) ValidateSpec() error {
	var errs []error
	if len(m.Name) > MaxNameLength {
		errs = append(errs, fmt.Errorf("metadata.name must be at most %d characters", MaxNameLength))
	}
	t := m.TimeoutDuration()
	if m.Spec.Timeout != nil && m.Spec.Timeout.Duration < MinTimeout {
		// TimeoutDuration turns <= 0 into the default; the raw value is wrong.
		t = m.Spec.Timeout.Duration
	}
	if t < MinTimeout {
		errs = append(errs, fmt.Errorf("timeout must be at least %s", MinTimeout))
	}
	if t > MaxDuration {
		errs = append(errs, errors.New("timeout must be at most 8760h (one year)"))
	}
	if i := m.Spec.Interval; i != nil {
		if i.Duration <= 0 {
			errs = append(errs, errors.New("interval must be greater than 0s"))
		} else if i.Duration > t {
			errs = append(errs, errors.New("interval must not be longer than timeout"))
		}
	}
	if g := m.Spec.GracePeriod; g != nil && (g.Duration < 0 || g.Duration > MaxDuration) {
		errs = append(errs, errors.New("gracePeriod must be between 0s and 8760h"))
	}
	return errors.Join(errs...)
}
