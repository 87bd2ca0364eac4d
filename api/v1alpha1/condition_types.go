package v1alpha1

// Condition types. Both have positive polarity: True is the good state.
const (
	// ReadyCondition is True when the monitor is set up: its token is issued into
	// its Secret and the push endpoint accepts heartbeats for it. False says why
	// not (for example SecretConflict).
	ReadyCondition = "Ready"

	// HealthyCondition is True while the monitor is Up, False while it is Down
	// (HeartbeatMissed, DownReported) and Unknown while it is Pending
	// (AwaitingFirstHeartbeat) or Suspended (Suspended).
	HealthyCondition = "Healthy"
)

// Condition types that kstatus reads (sigs.k8s.io/cli-utils/pkg/kstatus), so
// that Flux, Argo CD and kubectl wait show a monitor's health. Both have
// negative polarity ("abnormal-true"): present and True only while the
// abnormal state lasts, removed otherwise.
const (
	// StalledCondition is True while the monitor cannot work without a
	// change to its spec or its Secret's name (reasons InvalidSpec,
	// InvalidSchedule, SecretConflict, as on Ready): kstatus Failed.
	StalledCondition = "Stalled"

	// ReconcilingCondition is True while pushmon is still setting the
	// monitor up and will retry on its own (no token issued yet, a Secret
	// error, the followed CronJob not found yet): kstatus InProgress.
	ReconcilingCondition = "Reconciling"
)

// Reasons for the Ready condition.
const (
	// TokenIssuedReason (Ready=True; also a Normal event when a new token is
	// written): the push token is in the monitor's Secret.
	TokenIssuedReason = "TokenIssued"

	// SecretConflictReason (Ready=False): a Secret with the wanted name exists and
	// is not pushmon's; pushmon never overwrites it.
	SecretConflictReason = "SecretConflict"

	// InvalidSpecReason (Ready=False; also a Warning event): the spec breaks a
	// rule the CRD normally enforces; pushmon does not retry until it changes.
	InvalidSpecReason = "InvalidSpec"

	// InvalidScheduleReason (Ready=False; also a Warning event): spec.schedule
	// or spec.timeZone does not parse (normally refused at apply time by
	// pushmon's validating webhook). Not retried until the spec changes.
	InvalidScheduleReason = "InvalidSchedule"

	// CronJobNotFoundReason (Ready=False): spec.cronJobRef names a CronJob
	// that does not exist (yet); the monitor picks it up when it appears.
	CronJobNotFoundReason = "CronJobNotFound"

	// SecretErrorReason (Ready=False): the Secret could not be read or written;
	// the reconciler retries.
	SecretErrorReason = "SecretError"
)

// Reasons for the Healthy condition. The Down reasons double as Event reasons.
const (
	// HeartbeatReceivedReason (Healthy=True): heartbeats arrive within the timeout.
	HeartbeatReceivedReason = "HeartbeatReceived"

	// RecoveredReason (Healthy=True; also an Event reason): an up heartbeat
	// arrived while the monitor was Down.
	RecoveredReason = "Recovered"

	// HeartbeatMissedReason (Healthy=False; also an Event reason): no heartbeat
	// for timeout + grace period.
	HeartbeatMissedReason = "HeartbeatMissed"

	// DownReportedReason (Healthy=False; also an Event reason): a client pushed
	// status=down.
	DownReportedReason = "DownReported"

	// RunFailedReason (Healthy=False; also an Event reason): runs reported
	// failure (a /fail ping or a non-zero exit status) failureThreshold
	// times in a row.
	RunFailedReason = "RunFailed"

	// RunTooLongReason (Healthy=False; also an Event reason): a run is still
	// open maxRunDuration after its start.
	RunTooLongReason = "RunTooLong"

	// ScheduleMissedReason (Healthy=False; also an Event reason): with a
	// schedule, no run reported by a scheduled time + grace period.
	ScheduleMissedReason = "ScheduleMissed"

	// AwaitingFirstHeartbeatReason (Healthy=Unknown): no heartbeat yet.
	AwaitingFirstHeartbeatReason = "AwaitingFirstHeartbeat"

	// CronJobSuspendedReason (Healthy=Unknown): the followed CronJob is
	// suspended; no Down transitions, no alerts.
	CronJobSuspendedReason = "CronJobSuspended"

	// SuspendedReason (Healthy=Unknown): spec.suspend is true.
	SuspendedReason = "Suspended"
)
