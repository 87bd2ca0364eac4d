package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/history"
)

// BadgeKeyField indexes the cached PushMonitors by status.badgeKey.
const BadgeKeyField = "status.badgeKey"

// Setup indexes the manager's cache by badge key and adds the dashboard
// listening on addr.
func Setup(ctx context.Context, mgr ctrl.Manager, addr string) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &monitoringv1alpha1.PushMonitor{}, BadgeKeyField, BadgeKeyOf); err != nil {
		return fmt.Errorf("indexing badge keys: %w", err)
	}
	return mgr.Add(New(addr, mgr.GetCache(), mgr.GetLogger().WithName("dashboard")))
}

// BadgeKeyOf is the index function of BadgeKeyField: the key of a monitor
// that opts in, none otherwise.
func BadgeKeyOf(o client.Object) []string {
	m, ok := o.(*monitoringv1alpha1.PushMonitor)
	if !ok || m.Status.BadgeKey == "" || !public(m) {
		return nil
	}
	return []string{m.Status.BadgeKey}
}

func public(m *monitoringv1alpha1.PushMonitor) bool {
	return m.Labels[monitoringv1alpha1.PublicKey] == "true"
}

// PublicMonitor is what the status page shows of a monitor: its name,
// state and uptime, nothing else.
type PublicMonitor struct {
	Name, State, StateClass string
	Uptimes                 []Uptime
}

type statusPage struct {
	Monitors []PublicMonitor
	Now      string
}

// statusPage lists the monitors that opt in, by name only (not namespace:
// a status page is for people outside the cluster).
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	var all monitoringv1alpha1.PushMonitorList
	if err := s.Reader.List(r.Context(), &all, client.MatchingLabels{monitoringv1alpha1.PublicKey: "true"}, client.UnsafeDisableDeepCopy); err != nil {
		s.fail(w, err)
		return
	}
	now := s.now()
	sortMonitors(all.Items)
	p := statusPage{Now: now.UTC().Format(time.RFC3339)}
	for i := range all.Items {
		m := &all.Items[i]
		st := stateOf(m)
		p.Monitors = append(p.Monitors, PublicMonitor{Name: m.Name, State: st, StateClass: stateClass(st), Uptimes: uptimes(&m.Status, now)})
	}
	s.render(w, "status.html", p)
}

// badge answers /badge/{file}: <key>.svg, an SVG badge, or <key>.json, a
// shields.io endpoint. Unknown keys get 404, whatever the reason.
func (s *Server) badge(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	key, ext, ok := strings.Cut(file, ".")
	if !ok || (ext != "svg" && ext != "json") {
		http.NotFound(w, r)
		return
	}
	var list monitoringv1alpha1.PushMonitorList
	if err := s.Reader.List(r.Context(), &list, client.MatchingFields{BadgeKeyField: key}); err != nil {
		s.fail(w, err)
		return
	}
	if len(list.Items) != 1 || !public(&list.Items[0]) {
		http.NotFound(w, r)
		return
	}
	m := &list.Items[0]
	b := badgeOf(m, s.now())
	// Short: a badge follows the state within a minute, and image proxies
	// (GitHub's camo) honour it.
	w.Header().Set("Cache-Control", "max-age=60")
	if ext == "json" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"schemaVersion": 1, "label": b.Label, "message": b.Message, "color": b.ShieldsColor})
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	var out strings.Builder
	if err := s.tmpl.ExecuteTemplate(&out, "badge.svg", b); err != nil {
		s.fail(w, err)
		return
	}
	_, _ = w.Write([]byte(out.String()))
}

// Badge is a status badge: label on grey, message on the state's colour.
type Badge struct {
	Label, Message      string
	Color, ShieldsColor string
	LabelW, MessageW    int
}

func badgeOf(m *monitoringv1alpha1.PushMonitor, now time.Time) Badge {
	st := stateOf(m)
	b := Badge{Label: m.Name, Message: strings.ToLower(st), Color: "#9f9f9f", ShieldsColor: "lightgrey"}
	switch monitoringv1alpha1.MonitorState(st) {
	case monitoringv1alpha1.StateUp:
		b.Color, b.ShieldsColor = "#2e9d52", "brightgreen"
	case monitoringv1alpha1.StateDown:
		b.Color, b.ShieldsColor = "#d93f3f", "red"
	}
	if f := history.Uptime(&m.Status, 24*time.Hour, now); f.Known() && st != string(monitoringv1alpha1.StatePending) {
		b.Message += " · " + percent(f.Ratio)
	}
	// Verdana 11px averages about 7px a character; enough for a badge.
	b.LabelW, b.MessageW = 10+7*len([]rune(b.Label)), 10+7*len([]rune(b.Message))
	return b
}
