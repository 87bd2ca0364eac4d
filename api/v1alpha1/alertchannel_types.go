package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ChannelType is the service an alert channel delivers to.
// +kubebuilder:validation:Enum=Webhook;Slack;MSTeams;Discord;PagerDuty;Opsgenie;Email;Ntfy;Telegram;Alertmanager
type ChannelType string

// Channel types.
const (
	// ChannelWebhook POSTs pushmon's own JSON (optionally HMAC-SHA256 signed).
	ChannelWebhook ChannelType = "Webhook"
	// ChannelSlack posts to a Slack incoming webhook.
	ChannelSlack ChannelType = "Slack"
	// ChannelMSTeams posts an Adaptive Card to a Teams workflow webhook.
	ChannelMSTeams ChannelType = "MSTeams"
	// ChannelDiscord posts to a Discord webhook.
	ChannelDiscord ChannelType = "Discord"
	// ChannelPagerDuty sends PagerDuty Events API v2 trigger and resolve events.
	ChannelPagerDuty ChannelType = "PagerDuty"
	// ChannelOpsgenie creates and closes Opsgenie alerts.
	ChannelOpsgenie ChannelType = "Opsgenie"
	// ChannelEmail sends mail over SMTP.
	ChannelEmail ChannelType = "Email"
	// ChannelNtfy publishes to an ntfy topic.
	ChannelNtfy ChannelType = "Ntfy"
	// ChannelTelegram sends a Telegram Bot API message.
	ChannelTelegram ChannelType = "Telegram"
	// ChannelAlertmanager posts alerts to Alertmanager's v2 API.
	ChannelAlertmanager ChannelType = "Alertmanager"
)

// Annotations on alert channels and monitors.
const (
	// TestNotificationAnnotation on an AlertChannel or ClusterAlertChannel
	// asks for one test message; each new value sends one more
	// (status.lastTestNotification records the value handled).
	TestNotificationAnnotation = "monitoring.pushmon.dev/test-notification"
	// RunbookAnnotation on a PushMonitor is a URL put into its notifications.
	RunbookAnnotation = "monitoring.pushmon.dev/runbook-url"
)

// Reasons for an alert channel's Ready condition.
const (
	// ChannelConfiguredReason (Ready=True): the channel is valid and has not
	// failed a delivery yet.
	ChannelConfiguredReason = "Configured"
	// DeliveredReason (Ready=True): the last delivery succeeded.
	DeliveredReason = "Delivered"
	// DeliveryFailedReason (Ready=False): the last delivery failed after its
	// retries; the message holds the error.
	DeliveryFailedReason = "DeliveryFailed"
	// InvalidChannelReason (Ready=False): the spec or its Secret cannot work
	// (a missing key, an unparsable address).
	InvalidChannelReason = "InvalidChannel"
	// ChannelSuspendedReason (Ready=True): spec.suspend is true; nothing is sent.
	ChannelSuspendedReason = "Suspended"
)

// AlertChannelSpec says where and how notifications are delivered, and for
// which monitors.
//
// +kubebuilder:validation:XValidation:rule="has(self.address) || has(self.secretRef)",message="set address, or secretRef to a Secret holding the key address (for URLs that carry a credential, such as a Slack webhook)"
// +kubebuilder:validation:XValidation:rule="self.type != 'Email' || has(self.email)",message="type Email needs email (from and to)"
// +kubebuilder:validation:XValidation:rule="self.type != 'Telegram' || has(self.telegram)",message="type Telegram needs telegram.chatID"
// +kubebuilder:validation:XValidation:rule="!has(self.email) || self.type == 'Email'",message="email is only for type Email"
// +kubebuilder:validation:XValidation:rule="!has(self.telegram) || self.type == 'Telegram'",message="telegram is only for type Telegram"
// +kubebuilder:validation:XValidation:rule="!has(self.repeatInterval) || !self.repeatInterval.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self.repeatInterval) >= duration('1s')",message="repeatInterval must be at least 1s"
// +kubebuilder:validation:XValidation:rule="self.type != 'Email' || !has(self.address) || self.address.matches('^[^/:]+:[0-9]+$')",message="an Email address is the SMTP server as host:port, e.g. smtp.example.com:587"
// +kubebuilder:validation:XValidation:rule="self.type == 'Email' || !has(self.address) || self.address.matches('^https?://')",message="address must be an http:// or https:// URL"
type AlertChannelSpec struct {
	// type is the service: Webhook, Slack, MSTeams, Discord, PagerDuty,
	// Opsgenie, Email, Ntfy, Telegram or Alertmanager.
	// +required
	Type ChannelType `json:"type,omitempty"`

	// address is where to deliver: the webhook or API URL (for Ntfy the
	// topic URL, for Alertmanager its base URL, for PagerDuty, Opsgenie and
	// Telegram defaulting to the public API), or for Email the SMTP server
	// as host:port. A Secret's key "address" takes precedence, for URLs
	// that are themselves a credential.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Address string `json:"address,omitempty"`

	// secretRef names the Secret with the channel's credentials, in the
	// channel's namespace (a ClusterAlertChannel names the namespace).
	// Keys: address; hmacSecret (Webhook); routingKey (PagerDuty); apiKey
	// (Opsgenie); botToken (Telegram); token, or username and password
	// (Ntfy, Alertmanager, Email); ca.crt (a CA to trust for TLS).
	// +optional
	SecretRef *SecretReference `json:"secretRef,omitempty"`

	// monitorSelector selects the PushMonitors the channel serves by their
	// labels: in the channel's namespace, or every namespace for a
	// ClusterAlertChannel. An empty selector selects all; unset selects only
	// the monitors that name the channel in spec.alertChannels.
	// +optional
	MonitorSelector *metav1.LabelSelector `json:"monitorSelector,omitempty"`

	// repeatInterval is how often a reminder is sent while a monitor stays
	// Down. Unset sends none.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$')",message="repeatInterval must be a duration such as 30m or 4h (units: ns, us, ms, s, m, h)"
	RepeatInterval *metav1.Duration `json:"repeatInterval,omitempty"`

	// suspend stops all deliveries through the channel while true.
	// +optional
	Suspend bool `json:"suspend,omitempty"` //nolint:kubeapilinter // unset and false both mean not suspended, as PushMonitor's suspend

	// email configures type Email.
	// +optional
	Email *EmailConfig `json:"email,omitempty"`

	// telegram configures type Telegram.
	// +optional
	Telegram *TelegramConfig `json:"telegram,omitempty"`
}

// SecretReference names a Secret.
type SecretReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name,omitempty"`
	// namespace of the Secret: required for a ClusterAlertChannel, not
	// allowed for an AlertChannel (which reads its own namespace).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
}

// EmailConfig says who sends and who receives notification mail.
type EmailConfig struct {
	// from is the sender address.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=254
	From string `json:"from,omitempty"`
	// to are the recipients.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=254
	To []string `json:"to,omitempty"`
	// insecureSkipStartTLS sends without STARTTLS when the server does not
	// offer it (never with credentials). By default STARTTLS is required.
	// +optional
	InsecureSkipStartTLS bool `json:"insecureSkipStartTLS,omitempty"` //nolint:kubeapilinter // an opt-out: unset and false both mean STARTTLS required
}

// TelegramConfig names the chat a Telegram bot writes to.
type TelegramConfig struct {
	// chatID is the chat's id or @channelusername.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	ChatID string `json:"chatID,omitempty"`
}

// AlertChannelStatus is the channel's health as deliveries found it.
type AlertChannelStatus struct {
	// lastSuccessTime is when a delivery last succeeded.
	// +optional
	LastSuccessTime *metav1.Time `json:"lastSuccessTime,omitempty"`

	// lastError is the last delivery's error, empty once one succeeds.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	LastError string `json:"lastError,omitempty"` //nolint:kubeapilinter // "" is no error

	// lastTestNotification is the test-notification annotation's value a
	// test message was last sent (or tried) for.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	LastTestNotification string `json:"lastTestNotification,omitempty"` //nolint:kubeapilinter // "" is none handled

	// observedGeneration is the generation of the spec last validated.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"` //nolint:kubeapilinter // unset and 0 mean nothing observed yet, as everywhere in Kubernetes

	// conditions holds Ready: True while the channel is valid and its last
	// delivery succeeded; False with the error otherwise.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// AlertChannel delivers the Down, reminder and Recovered notifications of the
// PushMonitors in its namespace that it selects or that name it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=pushmon
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Last Success",type=date,JSONPath=`.status.lastSuccessTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Error",type=string,JSONPath=`.status.lastError`,priority=1
// +kubebuilder:validation:XValidation:rule="!has(self.spec.secretRef) || !has(self.spec.secretRef.__namespace__)",message="secretRef.namespace is only for a ClusterAlertChannel; an AlertChannel reads Secrets in its own namespace"
type AlertChannel struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's standard metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the channel.
	// +required
	Spec AlertChannelSpec `json:"spec,omitzero"`

	// status is what deliveries found.
	// +optional
	Status AlertChannelStatus `json:"status,omitempty"` //nolint:kubeapilinter // a value, as PushMonitor's status
}

// +kubebuilder:object:root=true

// AlertChannelList is a list of AlertChannels.
type AlertChannelList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AlertChannel `json:"items"`
}

// ClusterAlertChannel is an AlertChannel for platform teams: it serves the
// PushMonitors of every namespace that it selects or that name it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=pushmon
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Last Success",type=date,JSONPath=`.status.lastSuccessTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Error",type=string,JSONPath=`.status.lastError`,priority=1
// +kubebuilder:validation:XValidation:rule="!has(self.spec.secretRef) || has(self.spec.secretRef.__namespace__)",message="a ClusterAlertChannel's secretRef needs a namespace"
type ClusterAlertChannel struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's standard metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the channel.
	// +required
	Spec AlertChannelSpec `json:"spec,omitzero"`

	// status is what deliveries found.
	// +optional
	Status AlertChannelStatus `json:"status,omitempty"` //nolint:kubeapilinter // a value, as PushMonitor's status
}

// +kubebuilder:object:root=true

// ClusterAlertChannelList is a list of ClusterAlertChannels.
type ClusterAlertChannelList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterAlertChannel `json:"items"`
}

// AlertChannelKind says which kind of channel a monitor names.
// +kubebuilder:validation:Enum=AlertChannel;ClusterAlertChannel
type AlertChannelKind string

// Alert channel kinds.
const (
	// AlertChannelKindNamespaced is an AlertChannel in the monitor's namespace.
	AlertChannelKindNamespaced AlertChannelKind = "AlertChannel"
	// AlertChannelKindCluster is a ClusterAlertChannel.
	AlertChannelKindCluster AlertChannelKind = "ClusterAlertChannel"
)

// AlertChannelReference names a channel from a PushMonitor.
type AlertChannelReference struct {
	// kind is AlertChannel (the default, in the monitor's namespace) or
	// ClusterAlertChannel.
	// +optional
	// +kubebuilder:default=AlertChannel
	Kind AlertChannelKind `json:"kind,omitempty"`
	// name of the channel.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name,omitempty"`
}

// MaxNotifications bounds status.notifications (one entry per channel).
const MaxNotifications = 32

// NotificationEvent is what a notification announces.
// +kubebuilder:validation:Enum=Down;Reminder;Recovered
type NotificationEvent string

// Notification events.
const (
	// NotifyDown: the monitor went Down.
	NotifyDown NotificationEvent = "Down"
	// NotifyReminder: the monitor is still Down after repeatInterval.
	NotifyReminder NotificationEvent = "Reminder"
	// NotifyRecovered: the monitor is Up again.
	NotifyRecovered NotificationEvent = "Recovered"
	// NotifyTest is a test message asked for by annotation (never stored
	// on a monitor).
	NotifyTest NotificationEvent = "Test"
)

// Incident is the monitor's current or last Down period, written by the
// leader in the same status write as the transition, so that notifications
// follow the transitions exactly.
type Incident struct {
	// startTime is when the monitor went Down.
	// +required
	StartTime metav1.MicroTime `json:"startTime"` //nolint:kubeapilinter // always set; a required timestamp is a value, as metav1.Condition's lastTransitionTime
	// reason is the Down reason (HeartbeatMissed, DownReported, ...).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason,omitempty"`
	// message is the Down transition's message.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
	// endTime is when the monitor left Down.
	// +optional
	EndTime *metav1.MicroTime `json:"endTime,omitempty"`
	// endState is the state it left Down for: Up (a Recovered
	// notification) or Suspended or Pending (none).
	// +optional
	EndState MonitorState `json:"endState,omitempty"`
}

// ChannelNotification is what one channel delivered of the monitor's
// current incident: the record that keeps a new leader from repeating or
// skipping a notification.
type ChannelNotification struct {
	// channel is the channel as kind/name (AlertChannel/x, or
	// ClusterAlertChannel/x).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=320
	Channel string `json:"channel,omitempty"`
	// incidentStartTime is the startTime of the incident delivered.
	// +required
	IncidentStartTime metav1.MicroTime `json:"incidentStartTime"` //nolint:kubeapilinter // always set; a required timestamp is a value
	// lastEvent is the last notification delivered for it.
	// +required
	LastEvent NotificationEvent `json:"lastEvent,omitempty"`
	// reminders counts the reminders delivered for it.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Reminders int32 `json:"reminders,omitempty"` //nolint:kubeapilinter // unset and 0 mean none sent
	// time is when lastEvent was delivered.
	// +required
	Time metav1.Time `json:"time"` //nolint:kubeapilinter // always set; a required timestamp is a value
}
