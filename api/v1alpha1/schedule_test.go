package v1alpha1

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The expected times follow the CronJob controller, which reads schedules
// with the same library: a wall-clock time that a spring-forward change
// skips does not fire that day, one that a fall-back change repeats fires
// twice.
func TestScheduleNextAcrossDST(t *testing.T) {
	for _, c := range []struct {
		name, schedule, tz, from, want string
	}{
		{"Berlin before spring forward", "30 2 * * *", "Europe/Berlin", "2026-03-28T00:00:00Z", "2026-03-28T02:30:00+01:00"},
		{"Berlin spring forward skips 02:30", "30 2 * * *", "Europe/Berlin", "2026-03-28T01:30:00Z", "2026-03-30T02:30:00+02:00"},
		{"Berlin after spring forward", "30 2 * * *", "Europe/Berlin", "2026-03-30T00:30:00Z", "2026-03-31T02:30:00+02:00"},
		{"Berlin fall back, first 02:30", "30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T02:30:00+02:00"},
		{"Berlin fall back, 02:30 again", "30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-25T02:30:00+01:00"},
		{"New York spring forward skips 02:30", "30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-09T02:30:00-04:00"},
		{"New York fall back, first 01:30", "30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T01:30:00-04:00"},
		{"New York fall back, 01:30 again", "30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-01T01:30:00-05:00"},
		{"@daily in Tokyo", "@daily", "Asia/Tokyo", "2026-06-01T16:00:00Z", "2026-06-03T00:00:00+09:00"},
		{"UTC by default", "0 * * * *", "", "2026-06-01T16:00:00Z", "2026-06-01T17:00:00Z"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var tz *string
			if c.tz != "" {
				tz = &c.tz
			}
			s, err := ParseSchedule(c.schedule, tz)
			if err != nil {
				t.Fatal(err)
			}
			from, _ := time.Parse(time.RFC3339, c.from)
			want, _ := time.Parse(time.RFC3339, c.want)
			if got := s.Next(from); !got.Equal(want) || got.Location() != time.UTC {
				t.Errorf("Next(%s) = %s, want %s (in UTC)", c.from, got, want.UTC())
			}
		})
	}
}

func TestParseScheduleErrors(t *testing.T) {
	berlin, bad, local := "Europe/Berlin", "Mars/Olympus", "Local"
	for _, c := range []struct {
		schedule string
		tz       *string
		want     string
	}{
		{"61 * * * *", nil, `invalid schedule "61 * * * *": end of range (61) above maximum (59): 61`},
		{"* * *", nil, `invalid schedule "* * *": expected exactly 5 fields, found 3: [* * *]`},
		{"@sometimes", nil, `invalid schedule "@sometimes"`},
		{"CRON_TZ=UTC 0 * * * *", nil, "cannot use TZ or CRON_TZ in schedule, use timeZone instead"},
		{"0 0 30 2 *", &berlin, `schedule "0 0 30 2 *" never fires`},
		{"0 * * * *", &bad, `unknown time zone "Mars/Olympus"`},
		{"0 * * * *", &local, `unknown time zone "Local"`},
	} {
		_, err := ParseSchedule(c.schedule, c.tz)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseSchedule(%q) = %v, want an error containing %q", c.schedule, err, c.want)
		}
	}
}

// With a schedule the deadline is the next scheduled time after the anchor
// plus grace (default 10m); without, anchor + timeout + grace.
func TestDeadlineFromSchedule(t *testing.T) {
	berlin := "Europe/Berlin"
	m := &PushMonitor{Spec: PushMonitorSpec{Schedule: "30 2 * * *", TimeZone: &berlin}}
	anchor := time.Date(2026, 3, 28, 1, 40, 0, 0, time.UTC) // 02:40 in Berlin: just after the 02:30 run
	want := time.Date(2026, 3, 30, 0, 40, 0, 0, time.UTC)   // 02:30 CEST on the 30th (the 29th has no 02:30) + 10m
	if got := m.DeadlineFrom(anchor); !got.Equal(want) {
		t.Errorf("DeadlineFrom = %s, want %s", got, want)
	}
	m.Spec.GracePeriod = &metav1.Duration{Duration: time.Hour}
	if got := m.DeadlineFrom(anchor); !got.Equal(want.Add(50 * time.Minute)) {
		t.Errorf("with 1h grace: DeadlineFrom = %s, want %s", got, want.Add(50*time.Minute))
	}
	m.Spec.Schedule, m.Spec.TimeZone = "", nil
	m.Spec.Timeout = &metav1.Duration{Duration: time.Minute}
	if got := m.DeadlineFrom(anchor); !got.Equal(anchor.Add(time.Hour + time.Minute)) {
		t.Errorf("timeout mode: DeadlineFrom = %s", got)
	}
}
