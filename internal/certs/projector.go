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
	changed, err := writePair(p.cfg.CertDir, map[string][]byte{p.cfg.CertName: crt, p.cfg.KeyName: key})
	if err != nil {
		p.log.Error(err, "cannot write the webhook certificate", "dir", p.cfg.CertDir)
		return
	}
	if changed {
		p.log.Info("wrote the webhook serving certificate from its Secret", "dir", p.cfg.CertDir, "secret", p.cfg.Secret.String())
	}
}

// dataLink is the symlink to the directory holding the current files.
const dataLink = "..data"

// writePair puts files into dir the way the kubelet fills a Secret volume:
// into a new directory that one rename of the symlink dir/..data makes
// current, with dir/<name> a symlink to ..data/<name>. The certificate
// watcher so never reads a certificate and a key of two different
// issues, as two renames of plain files would let it between them.
func writePair(dir string, files map[string][]byte) (bool, error) {
	same := true
	for name, data := range files {
		if old, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(old, data) {
			same = false
		}
	}
	if same {
		return false, nil
	}
	tmp, err := os.MkdirTemp(dir, "..issued-")
	if err != nil {
		return false, err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(tmp, name), data, 0o600); err != nil {
			os.RemoveAll(tmp) // best effort: the error returned matters more
			return false, err
		}
	}
	previous, _ := os.Readlink(filepath.Join(dir, dataLink))
	if err := replaceSymlink(filepath.Base(tmp), filepath.Join(dir, dataLink)); err != nil {
		os.RemoveAll(tmp) // best effort: the error returned matters more
		return false, err
	}
	for name := range files {
		target := filepath.Join(dataLink, name)
		if cur, err := os.Readlink(filepath.Join(dir, name)); err == nil && cur == target {
			continue
		}
		if err := replaceSymlink(target, filepath.Join(dir, name)); err != nil {
			return false, err
		}
	}
	if previous != "" && previous != filepath.Base(tmp) {
		if err := os.RemoveAll(filepath.Join(dir, previous)); err != nil {
			return true, err
		}
	}
	return true, nil
}

// replaceSymlink points path at target in one rename.
func replaceSymlink(target, path string) error {
	tmp := path + ".tmp"
	_ = os.Remove(tmp) // a leftover of a crash between these two steps
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
