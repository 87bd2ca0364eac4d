package testutil

import (
	"time"

	"k8s.io/utils/clock"
)

// ClockFunc is a clock.PassiveClock that reads the time from a function,
// for a test that moves the reconciler's time by hand.
type ClockFunc func() time.Time

var _ clock.PassiveClock = ClockFunc(nil)

func (f ClockFunc) Now() time.Time                  { return f() }
func (f ClockFunc) Since(t time.Time) time.Duration { return f().Sub(t) }
