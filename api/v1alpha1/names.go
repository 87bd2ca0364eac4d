package v1alpha1

// Names pushmon puts on, or reads from, objects other than PushMonitors,
// which users write or see: each lives here once.
const (
	// MonitorKey names a PushMonitor in the same namespace. As a label, on the
	// Secrets pushmon issues. As an annotation on a pod template, it opts the
	// pods in to PUSH_URL injection. As an annotation on a CronJob with the
	// value AutoMonitor, it makes pushmon create a PushMonitor that follows it.
	MonitorKey = "monitoring.pushmon.dev/monitor"
	// AutoMonitor is MonitorKey's value on a CronJob that asks for a monitor.
	AutoMonitor = "auto"
	// PublicKey, as a label on a PushMonitor with the value "true", opts it
	// in to the public status page and to a status badge under
	// status.badgeKey (docs/dashboard.md).
	PublicKey = "monitoring.pushmon.dev/public"
)

// Reasons of the events pushmon emits about objects other than PushMonitors.
const (
	// MonitorCreatedReason (Normal, on a CronJob): the PushMonitor it asked
	// for was created.
	MonitorCreatedReason = "PushMonitorCreated"
	// MonitorNameTakenReason (Warning, on a CronJob): a PushMonitor of the
	// CronJob's name exists and was not created for it; pushmon leaves it.
	MonitorNameTakenReason = "PushMonitorNameTaken"
	// MonitorNotFoundReason (Warning, on a pod): the pod names a monitor that
	// does not exist or cannot be used; it is admitted unchanged.
	MonitorNotFoundReason = "PushMonitorNotFound"
)
