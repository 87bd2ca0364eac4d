package push

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/heartbeat"
)

// PingPathPrefix is where the Healthchecks-compatible routes are served:
// /ping/{token}, /ping/{token}/start, /fail, /log and /{exit status}, so
// that scripts written for Healthchecks work with only their base URL
// changed. Same tokens, limits and "200 only once recorded" rule as
// /api/push; the answers are Healthchecks' plain-text "OK" and "not found".
const PingPathPrefix = "/ping/"

// ridPattern bounds a run ID (Healthchecks sends UUIDs).
var ridPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// servePing answers one ping. As for pushes, nothing here logs the URL or
// the token.
func (s *Server) servePing(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, POST")
		writeText(w, http.StatusMethodNotAllowed, "method not allowed: use POST, GET or HEAD")
		return
	}
	hb, err := s.parsePing(w, r)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeText(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", s.opts.MaxBodyBytes))
			return
		}
		writeText(w, http.StatusBadRequest, err.Error())
		return
	}
	switch out, allowed := s.deliver(r, hb); out {
	case outcomeUnknown:
		writeText(w, http.StatusNotFound, "not found")
		return
	case outcomeMethod:
		w.Header().Set("Allow", allowHeader(allowed, http.MethodGet, http.MethodHead, http.MethodPost))
		writeText(w, http.StatusMethodNotAllowed, "method not allowed for this check")
		return
	case outcomeUnavailable:
		w.Header().Set("Retry-After", "1")
		writeText(w, http.StatusServiceUnavailable, "ping could not be recorded; retry")
		return
	}
	writeText(w, http.StatusOK, "OK")
}

// parsePing reads the signal from the path, rid from the query and, but for
// /start, the body as the message (capped).
func (s *Server) parsePing(w http.ResponseWriter, r *http.Request) (heartbeat.Heartbeat, error) {
	hb := heartbeat.Heartbeat{Time: s.now(), Kind: heartbeat.KindSuccess, Status: monitoringv1alpha1.ReportedUp}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		return hb, err
	}
	withBody := true
	switch signal := r.PathValue("signal"); signal {
	case "":
		// A success: its body (a script's output) is the message, as
		// Healthchecks keeps it.
	case "start":
		hb.Kind, withBody = heartbeat.KindStart, false
	case "fail":
		hb.Kind, hb.Status = heartbeat.KindFail, monitoringv1alpha1.ReportedDown
	case "log":
		hb.Kind = heartbeat.KindLog
	default:
		code, err := strconv.Atoi(signal)
		if err != nil || code < 0 || code > 255 || strconv.Itoa(code) != signal {
			return hb, fmt.Errorf("unknown ping %q: use start, fail, log or an exit status 0-255", truncate(signal, 32))
		}
		c := int32(code)
		hb.ExitCode = &c
		if code != 0 {
			hb.Kind, hb.Status = heartbeat.KindFail, monitoringv1alpha1.ReportedDown
		}
	}
	if withBody {
		hb.Message = CleanMessage(strings.TrimSpace(string(body)), s.opts.MaxMessageBytes)
	}
	if rid := r.URL.Query().Get("rid"); rid != "" {
		if !ridPattern.MatchString(rid) {
			return hb, errors.New("invalid rid: up to 64 letters, digits, '.', '_' or '-'")
		}
		hb.RunID = rid
	}
	return hb, nil
}

// writeText answers code with a plain-text body, as Healthchecks does.
func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg)
}
