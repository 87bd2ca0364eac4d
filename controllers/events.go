package controllers

import (
	"fmt"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
)

// API limits on what pushmon writes about a monitor.
const (
	// MaxEventNote is the longest note events.k8s.io accepts (in bytes); it
	// refuses longer events whole, and the recorder does not retry.
	MaxEventNote = 1024
	// maxConditionMessage is the longest condition message metav1.Condition
	// accepts (in bytes).
	maxConditionMessage = 32768
	// truncatedMarker ends a note or message that was cut to fit.
	truncatedMarker = " …[truncated]"
)

// limitText cuts s to at most n bytes, on a rune boundary, ending it with
// truncatedMarker when it had to be cut.
func limitText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len(truncatedMarker)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + truncatedMarker
}

// LimitNotes wraps an event recorder so that every note fits the API's
// limit: a down report at the message cap plus the note's own words must
// still raise its event, shortened, rather than be refused.
func LimitNotes(r events.EventRecorder) events.EventRecorder {
	if _, ok := r.(noteLimiter); ok || r == nil {
		return r
	}
	return noteLimiter{r}
}

type noteLimiter struct{ events.EventRecorder }

func (l noteLimiter) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	l.EventRecorder.Eventf(regarding, related, eventtype, reason, action, "%s", limitText(fmt.Sprintf(note, args...), MaxEventNote))
}
