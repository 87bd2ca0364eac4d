package v1alpha1

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func d(x time.Duration) *metav1.Duration { return &metav1.Duration{Duration: x} }

func pm(name string, spec PushMonitorSpec) *PushMonitor {
	return &PushMonitor{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Spec: spec}
}

func TestDurations(t *testing.T) {
	tests := []struct {
		name                     string
		spec                     PushMonitorSpec
		timeout, interval, grace time.Duration
	}{
		{name: "all unset", spec: PushMonitorSpec{},
			timeout: 60 * time.Second, interval: 60 * time.Second, grace: 6 * time.Second},
		{name: "zero timeout is the default", spec: PushMonitorSpec{Timeout: d(0)},
			timeout: 60 * time.Second, interval: 60 * time.Second, grace: 6 * time.Second},
		{name: "negative timeout is the default", spec: PushMonitorSpec{Timeout: d(-time.Second)},
			timeout: 60 * time.Second, interval: 60 * time.Second, grace: 6 * time.Second},
		{name: "timeout 5m", spec: PushMonitorSpec{Timeout: d(5 * time.Minute)},
			timeout: 5 * time.Minute, interval: 5 * time.Minute, grace: 30 * time.Second},
		{name: "timeout 1h30m", spec: PushMonitorSpec{Timeout: d(90 * time.Minute)},
			timeout: 90 * time.Minute, interval: 90 * time.Minute, grace: 9 * time.Minute},
		{name: "default grace floor with a short timeout", spec: PushMonitorSpec{Timeout: d(5 * time.Second)},
			timeout: 5 * time.Second, interval: 5 * time.Second, grace: time.Second},
		{name: "default grace at the floor", spec: PushMonitorSpec{Timeout: d(10 * time.Second)},
			timeout: 10 * time.Second, interval: 10 * time.Second, grace: time.Second},
		{name: "default grace just above the floor", spec: PushMonitorSpec{Timeout: d(11 * time.Second)},
			timeout: 11 * time.Second, interval: 11 * time.Second, grace: 1100 * time.Millisecond},
		{name: "minimum timeout", spec: PushMonitorSpec{Timeout: d(time.Second)},
			timeout: time.Second, interval: time.Second, grace: time.Second},
		{name: "interval set", spec: PushMonitorSpec{Timeout: d(5 * time.Minute), Interval: d(time.Minute)},
			timeout: 5 * time.Minute, interval: time.Minute, grace: 30 * time.Second},
		{name: "interval zero is the timeout", spec: PushMonitorSpec{Timeout: d(5 * time.Minute), Interval: d(0)},
			timeout: 5 * time.Minute, interval: 5 * time.Minute, grace: 30 * time.Second},
		{name: "interval with the default timeout", spec: PushMonitorSpec{Interval: d(30 * time.Second)},
			timeout: 60 * time.Second, interval: 30 * time.Second, grace: 6 * time.Second},
		{name: "explicit grace", spec: PushMonitorSpec{Timeout: d(5 * time.Minute), GracePeriod: d(2 * time.Minute)},
			timeout: 5 * time.Minute, interval: 5 * time.Minute, grace: 2 * time.Minute},
		{name: "explicit grace below the default floor", spec: PushMonitorSpec{GracePeriod: d(100 * time.Millisecond)},
			timeout: 60 * time.Second, interval: 60 * time.Second, grace: 100 * time.Millisecond},
		{name: "explicit zero grace", spec: PushMonitorSpec{Timeout: d(5 * time.Minute), GracePeriod: d(0)},
			timeout: 5 * time.Minute, interval: 5 * time.Minute, grace: 0},
		{name: "negative grace counts as zero", spec: PushMonitorSpec{GracePeriod: d(-time.Minute)},
			timeout: 60 * time.Second, interval: 60 * time.Second, grace: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			m := pm("job", tc.spec)
			g.Expect(m.TimeoutDuration()).To(Equal(tc.timeout))
			g.Expect(m.IntervalDuration()).To(Equal(tc.interval))
			g.Expect(m.GracePeriodDuration()).To(Equal(tc.grace))
		})
	}
}

func TestDeadlineFrom(t *testing.T) {
	anchor := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	tests := []struct {
		name string
		spec PushMonitorSpec
		want time.Time
	}{
		{name: "defaults: 60s + 6s", spec: PushMonitorSpec{}, want: anchor.Add(66 * time.Second)},
		{name: "5m + default 30s", spec: PushMonitorSpec{Timeout: d(5 * time.Minute)}, want: anchor.Add(5*time.Minute + 30*time.Second)},
		{name: "5s + floor 1s", spec: PushMonitorSpec{Timeout: d(5 * time.Second)}, want: anchor.Add(6 * time.Second)},
		{name: "explicit grace", spec: PushMonitorSpec{Timeout: d(time.Minute), GracePeriod: d(time.Minute)}, want: anchor.Add(2 * time.Minute)},
		{name: "no grace", spec: PushMonitorSpec{Timeout: d(time.Minute), GracePeriod: d(0)}, want: anchor.Add(time.Minute)},
		{name: "longest allowed", spec: PushMonitorSpec{Timeout: d(MaxDuration), GracePeriod: d(MaxDuration)}, want: anchor.Add(2 * MaxDuration)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got := pm("job", tc.spec).DeadlineFrom(anchor)
			g.Expect(got).To(Equal(tc.want))
			g.Expect(got.Location()).To(Equal(time.UTC))
		})
	}
}

func TestDesiredSecretName(t *testing.T) {
	tests := []struct {
		name, monitor, secretName, want string
	}{
		{name: "default", monitor: "nightly-backup", want: "nightly-backup-push"},
		{name: "explicit", monitor: "nightly-backup", secretName: "backup-token", want: "backup-token"},
		{name: "default of a 63-character name", monitor: strings.Repeat("a", 63), want: strings.Repeat("a", 63) + "-push"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(pm(tc.monitor, PushMonitorSpec{SecretName: tc.secretName}).DesiredSecretName()).To(Equal(tc.want))
		})
	}
}

func TestValidateSpec(t *testing.T) {
	tests := []struct {
		name string
		m    *PushMonitor
		want []string // substrings of the error; none: valid
	}{
		{name: "empty spec", m: pm("job", PushMonitorSpec{})},
		{name: "typical", m: pm("job", PushMonitorSpec{Timeout: d(5 * time.Minute), Interval: d(time.Minute), GracePeriod: d(30 * time.Second)})},
		{name: "name of 63 characters", m: pm(strings.Repeat("a", 63), PushMonitorSpec{})},
		{name: "name of 64 characters", m: pm(strings.Repeat("a", 64), PushMonitorSpec{}),
			want: []string{"metadata.name must be at most 63 characters"}},
		{name: "timeout 1s", m: pm("job", PushMonitorSpec{Timeout: d(time.Second)})},
		{name: "timeout under 1s", m: pm("job", PushMonitorSpec{Timeout: d(999 * time.Millisecond)}),
			want: []string{"timeout must be at least 1s"}},
		{name: "timeout 0s", m: pm("job", PushMonitorSpec{Timeout: d(0)}),
			want: []string{"timeout must be at least 1s"}},
		{name: "timeout negative", m: pm("job", PushMonitorSpec{Timeout: d(-5 * time.Second)}),
			want: []string{"timeout must be at least 1s"}},
		{name: "timeout 1ns", m: pm("job", PushMonitorSpec{Timeout: d(1)}),
			want: []string{"timeout must be at least 1s"}},
		{name: "timeout 8760h", m: pm("job", PushMonitorSpec{Timeout: d(8760 * time.Hour)})},
		{name: "timeout over 8760h", m: pm("job", PushMonitorSpec{Timeout: d(8760*time.Hour + time.Nanosecond)}),
			want: []string{"timeout must be at most 8760h"}},
		{name: "interval equal to timeout", m: pm("job", PushMonitorSpec{Timeout: d(time.Minute), Interval: d(time.Minute)})},
		{name: "interval 1ns", m: pm("job", PushMonitorSpec{Timeout: d(time.Minute), Interval: d(1)})},
		{name: "interval 0", m: pm("job", PushMonitorSpec{Timeout: d(time.Minute), Interval: d(0)}),
			want: []string{"interval must be greater than 0s"}},
		{name: "interval negative", m: pm("job", PushMonitorSpec{Interval: d(-time.Second)}),
			want: []string{"interval must be greater than 0s"}},
		{name: "interval over timeout", m: pm("job", PushMonitorSpec{Timeout: d(time.Minute), Interval: d(time.Minute + 1)}),
			want: []string{"interval must not be longer than timeout"}},
		{name: "interval over the default timeout", m: pm("job", PushMonitorSpec{Interval: d(61 * time.Second)}),
			want: []string{"interval must not be longer than timeout"}},
		{name: "grace 0s", m: pm("job", PushMonitorSpec{GracePeriod: d(0)})},
		{name: "grace 8760h", m: pm("job", PushMonitorSpec{GracePeriod: d(8760 * time.Hour)})},
		{name: "grace negative", m: pm("job", PushMonitorSpec{GracePeriod: d(-time.Second)}),
			want: []string{"gracePeriod must be between 0s and 8760h"}},
		{name: "grace over 8760h", m: pm("job", PushMonitorSpec{GracePeriod: d(8760*time.Hour + time.Nanosecond)}),
			want: []string{"gracePeriod must be between 0s and 8760h"}},
		{name: "every rule at once", m: pm(strings.Repeat("b", 64), PushMonitorSpec{
			Timeout: d(500 * time.Millisecond), Interval: d(time.Second), GracePeriod: d(-1)}),
			want: []string{"metadata.name", "timeout must be at least 1s", "interval must not be longer than timeout", "gracePeriod"}},
		{name: "timeout too long and interval 0", m: pm("job", PushMonitorSpec{Timeout: d(9000 * time.Hour), Interval: d(0)}),
			want: []string{"timeout must be at most 8760h", "interval must be greater than 0s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := tc.m.ValidateSpec()
			if len(tc.want) == 0 {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(HaveOccurred())
			for _, w := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
			g.Expect(strings.Split(err.Error(), "\n")).To(HaveLen(len(tc.want)), "one line per broken rule")
		})
	}
}

// TestDurationPattern checks that every duration regex in the Go markers and
// in the generated CRD is DurationPattern, and that what it accepts Go parses.
func TestDurationPattern(t *testing.T) {
	g := NewWithT(t)
	re := regexp.MustCompile(`matches\('{1,2}([^']*)'{1,2}\)`) // the CRD's YAML doubles the quotes
	for _, file := range []string{"pushmonitor_types.go", "../../config/crd/bases/monitoring.pushmon.dev_pushmonitors.yaml"} {
		src, err := os.ReadFile(file)
		g.Expect(err).NotTo(HaveOccurred())
		found := re.FindAllStringSubmatch(string(src), -1)
		g.Expect(len(found)).To(BeNumerically(">=", 10), file)
		for _, m := range found {
			g.Expect(m[1]).To(Equal(DurationPattern), file)
		}
	}
	pattern := regexp.MustCompile(DurationPattern)
	for _, ok := range []string{"90s", "5m", "1h30m", "1.5h", "0s", "500ms", "10µs", "2us"} {
		g.Expect(pattern.MatchString(ok)).To(BeTrue(), ok)
		_, err := time.ParseDuration(ok)
		g.Expect(err).NotTo(HaveOccurred(), ok)
	}
	for _, bad := range []string{"", "0", "-5m", "+5m", "1d", "5 m", "5M", ".5s", "5.s"} {
		g.Expect(pattern.MatchString(bad)).To(BeFalse(), bad)
	}
}
