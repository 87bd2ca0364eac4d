package relay

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// pollEvery is how often a replica reads the leader's address: the longest a
// replica keeps relaying to a leader that is gone (it falls back to the API
// at the first failure anyway) or keeps writing after a new leader began.
const pollEvery = time.Second

// Publisher writes this process's relay address into the Lease while it
// leads (a runnable that needs leader election). The Lease's holderIdentity
// is the address; its renewTime says when the term began.
type Publisher struct {
	// Client writes the Lease; Reader reads it around the cache (pushmon
	// caches no Leases).
	Client  client.Client
	Reader  client.Reader
	Lease   types.NamespacedName
	Address string
	Log     logr.Logger
}

// Start publishes the address once and returns when ctx ends.
func (p *Publisher) Start(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		err := p.publish(ctx)
		if err == nil {
			break
		}
		p.Log.Error(err, "publishing the relay address; replicas record heartbeats through the API meanwhile")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
	<-ctx.Done()
	return nil
}

func (p *Publisher) publish(ctx context.Context) error {
	now := metav1.NewMicroTime(time.Now())
	var l coordinationv1.Lease
	err := p.Reader.Get(ctx, p.Lease, &l)
	if apierrors.IsNotFound(err) {
		l = coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: p.Lease.Namespace, Name: p.Lease.Name},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To(p.Address), AcquireTime: &now, RenewTime: &now},
		}
		return p.Client.Create(ctx, &l)
	}
	if err != nil {
		return err
	}
	l.Spec.HolderIdentity = ptr.To(p.Address)
	l.Spec.AcquireTime, l.Spec.RenewTime = &now, &now
	return p.Client.Update(ctx, &l)
}

// Resolver tells the leader's relay address, read from the Lease every
// pollEvery in the background (a Get, not a watch: replicas need no list or
// watch of Leases). It is a runnable on every replica.
type Resolver struct {
	Reader client.Reader
	Lease  types.NamespacedName
	// Self is this process's own address, never relayed to.
	Self string

	addr atomic.Pointer[string]
}

// NeedLeaderElection is false: every replica resolves.
func (r *Resolver) NeedLeaderElection() bool { return false }

// Start polls until ctx ends.
func (r *Resolver) Start(ctx context.Context) error {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		r.poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (r *Resolver) poll(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, pollEvery)
	defer cancel()
	var l coordinationv1.Lease
	err := r.Reader.Get(ctx, r.Lease, &l)
	switch {
	case err == nil && l.Spec.HolderIdentity != nil:
		r.addr.Store(l.Spec.HolderIdentity)
	case apierrors.IsNotFound(err):
		r.addr.Store(nil)
	}
	// Other errors keep the last address: a post to it fails fast if it is
	// gone, and the replica records through the API meanwhile.
}

// Leader returns the published address, "" when none is known (or it is
// this process's own: a process that does not lead must not post to itself).
func (r *Resolver) Leader() string {
	a := r.addr.Load()
	if a == nil || *a == r.Self {
		return ""
	}
	return *a
}
