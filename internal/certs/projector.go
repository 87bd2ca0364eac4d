package certs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// projector writes the Secret's serving certificate and key into CertDir,
// as the kubelet would for a Secret volume, but as soon as the Secret
// changes instead of on the kubelet's next sync of the pod (up to a minute
// or two, which would be how long a fresh install or a renewal waits).
// The webhook server's certificate watcher picks the files up. The CA's key
// is never written to disk.
type projector struct {
	cfg   Config
	cache cache.Cache
	log   logr.Logger
}

func newProjector(mgr manager.Manager, cfg Config) (*projector, error) {
	// A cache of the one Secret (a field selector, so RBAC can name it).
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme: mgr.GetScheme(),
		Mapper: mgr.GetRESTMapper(),
		ByObject: map[client.Object]cache.ByObject{&corev1.Secret{}: {
			Namespaces: map[string]cache.Config{cfg.Secret.Namespace: {}},
			Field:      fields.OneTermEqualSelector("metadata.name", cfg.Secret.Name),
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("creating the webhook certificate cache: %w", err)
	}
	// A bare cache would run on the leader only (the manager's default for
	// a runnable that does not say); every replica needs this one.
	if err := mgr.Add(everyReplica{c}); err != nil {
		return nil, fmt.Errorf("adding the webhook certificate cache: %w", err)
	}
	return &projector{cfg: cfg, cache: c, log: mgr.GetLogger().WithName("webhook-certs")}, nil
}

// everyReplica runs a cache on every replica, as cert-controller's own.
type everyReplica struct{ cache.Cache }

func (everyReplica) NeedLeaderElection() bool { return false }

// NeedLeaderElection is false: every replica serves with the certificate.
func (p *projector) NeedLeaderElection() bool { return false }

func (p *projector) Start(ctx context.Context) error {
	inf, err := p.cache.GetInformer(ctx, &corev1.Secret{})
	if err != nil {
		return fmt.Errorf("watching the webhook certificate Secret: %w", err)
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.write(obj) },
		UpdateFunc: func(_, obj any) { p.write(obj) },
	})
	if err != nil {
		return err
	}
	<-ctx.Done()
	return inf.RemoveEventHandler(reg)
}

func (p *projector) write(obj any) {
	s, ok := obj.(*corev1.Secret)
	if !ok || s.Name != p.cfg.Secret.Name || s.Namespace != p.cfg.Secret.Namespace {
		return
	}
	crt, key := s.Data[p.cfg.CertName], s.Data[p.cfg.KeyName]
	if len(crt) == 0 || len(key) == 0 {
		return // not issued yet: the rotator's write brings an update
	}
	if err := os.MkdirAll(p.cfg.CertDir, 0o700); err != nil {
		p.log.Error(err, "cannot write the webhook certificate", "dir", p.cfg.CertDir)
		return
	}
	// The key first: the certificate's appearance is what the rotator
	// waits for, and by then the key beside it must be there.
	for _, f := range []struct {
		name string
		data []byte
	}{{p.cfg.KeyName, key}, {p.cfg.CertName, crt}} {
		changed, err := writeIfChanged(filepath.Join(p.cfg.CertDir, f.name), f.data)
		if err != nil {
			p.log.Error(err, "cannot write the webhook certificate", "dir", p.cfg.CertDir)
			return
		}
		if changed {
			p.log.Info("wrote the webhook serving certificate from its Secret", "file", f.name, "secret", p.cfg.Secret.String())
		}
	}
}

// writeIfChanged replaces path with data through a rename, so that a reader
// sees the old file or the new one, never half of it.
func writeIfChanged(path string, data []byte) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return false, err
	}
	// Gone after the rename; removes a leftover only on failure.
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	return true, os.Rename(tmp.Name(), path)
}
