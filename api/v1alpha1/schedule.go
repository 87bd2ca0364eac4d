package v1alpha1

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// DefaultScheduleGracePeriod is spec.gracePeriod when a schedule is set and
// no grace is: time for a CronJob's pod to be scheduled, pull its image and
// report its start.
const DefaultScheduleGracePeriod = 10 * time.Minute

// Schedule is a parsed spec.schedule in its time zone (not an API type).
// +kubebuilder:object:generate=false
type Schedule struct {
	spec cron.Schedule  //nolint:kubeapilinter // not an API type: never serialised
	loc  *time.Location //nolint:kubeapilinter // not an API type: never serialised
}

// ParseSchedule parses a schedule as the Kubernetes CronJob controller
// does (robfig/cron's standard parser: five fields or a descriptor such as
// @daily), read in the IANA time zone tz (UTC when nil). Time zones go in
// timeZone, not in the schedule, as for a CronJob.
func ParseSchedule(schedule string, tz *string) (*Schedule, error) {
	if strings.Contains(schedule, "TZ") {
		return nil, errors.New("cannot use TZ or CRON_TZ in schedule, use timeZone instead")
	}
	spec, err := cron.ParseStandard(schedule)
	if err != nil {
		return nil, fmt.Errorf("invalid schedule %q: %w", schedule, err)
	}
	loc, err := LoadTimeZone(tz)
	if err != nil {
		return nil, err
	}
	s := &Schedule{spec: spec, loc: loc}
	if s.Next(time.Now()).IsZero() {
		return nil, fmt.Errorf("schedule %q never fires", schedule)
	}
	return s, nil
}

// LoadTimeZone is the IANA time zone tz names, UTC when nil. The machine's
// own zone ("Local", "") is refused: a schedule must not change meaning with
// the node pushmon runs on.
func LoadTimeZone(tz *string) (*time.Location, error) {
	if tz == nil {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil || *tz == "" || strings.EqualFold(*tz, "local") {
		return nil, fmt.Errorf("unknown time zone %q: use an IANA name such as Europe/Berlin", *tz)
	}
	return loc, nil
}

// Next is the first scheduled time after t (zero if none within five
// years), in UTC. Wall-clock times that a DST change skips or repeats are
// handled as the CronJob controller handles them, by the same library.
func (s *Schedule) Next(t time.Time) time.Time {
	n := s.spec.Next(t.In(s.loc))
	if n.IsZero() {
		return n
	}
	return n.UTC()
}

// ParsedSchedule is spec.schedule parsed, nil without one.
func (m *PushMonitor) ParsedSchedule() (*Schedule, error) {
	if m.Spec.Schedule == "" {
		return nil, nil
	}
	return ParseSchedule(m.Spec.Schedule, m.Spec.TimeZone)
}

// NextRunAfter is when the first run after anchor is expected, for a
// monitor with a valid schedule.
func (m *PushMonitor) NextRunAfter(anchor time.Time) (time.Time, bool) {
	s, err := m.ParsedSchedule()
	if s == nil || err != nil {
		return time.Time{}, false
	}
	n := s.Next(anchor)
	return n, !n.IsZero()
}
