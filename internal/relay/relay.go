// Package relay carries heartbeats that change nothing in status but their
// time from the replica that received them to the leader, which holds them in
// memory (heartbeat.Live) instead of having them written into status.
//
// The leader publishes the address of its relay endpoint in a Lease; every
// replica reads it (Resolver) and posts such heartbeats there in batches
// (Forwarder); the leader's endpoint (Server) takes a beat only while it
// leads, after looking its token up again. A push is answered 200 once the
// leader holds its beat; whatever cannot be relayed at once (no leader
// known, the leader slow or gone, a beat it refuses) is recorded the usual
// way, through the API, so a 200 is never a heartbeat nobody holds.
//
// Push tokens cross the pod network in the relay's requests, as they do in
// the pushes themselves; nothing here logs them.
package relay

import (
	"time"
)

// Path is the leader's relay endpoint.
const Path = "/relay/v1/beats"

// DefaultLeaseName names the Lease the leader publishes its relay address in.
const DefaultLeaseName = "pushmon-relay"

// Bounds of one relayed push.
const (
	// DefaultBudget is how long a push waits for the leader to take its beat
	// before it is recorded through the API instead.
	DefaultBudget = 250 * time.Millisecond
	// MaxBatch caps the beats of one request.
	MaxBatch = 512
	// maxRequestBytes caps a request's body (a token is 43 bytes, a message
	// at most 1 KiB).
	maxRequestBytes = MaxBatch * 1200
)

// wireBeat is one beat on the wire. The token is sent, not the monitor's
// name: the leader looks it up again, so the relay endpoint can be used for
// nothing a push could not do.
type wireBeat struct {
	Token   string    `json:"token"`
	Time    time.Time `json:"time"`
	Message string    `json:"msg,omitempty"`
	Value   string    `json:"value,omitempty"`
}

type wireRequest struct {
	Beats []wireBeat `json:"beats"`
}

// wireAnswer says, per beat in order, whether the leader holds it.
type wireAnswer struct {
	Held []bool `json:"held"`
}
