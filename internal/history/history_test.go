package history

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

func TestAddTransitionKeepsTheNewest(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Date(2026, 6, 10, 0, 0, 0, 0, time.UTC)
	var st monitoringv1alpha1.PushMonitorStatus
	for i := range 12 {
		AddTransition(&st, monitoringv1alpha1.TransitionRecord{Time: metav1.NewMicroTime(t0.Add(time.Duration(i) * time.Minute)),
			State: monitoringv1alpha1.StateUp, Reason: "R"}, monitoringv1alpha1.DefaultHistoryLimit)
	}
	g.Expect(st.RecentTransitions).To(HaveLen(monitoringv1alpha1.DefaultHistoryLimit))
	g.Expect(st.RecentTransitions[0].Time.Time).To(Equal(t0.Add(2 * time.Minute)))
	g.Expect(st.RecentTransitions[9].Time.Time).To(Equal(t0.Add(11 * time.Minute)))
	// A limit beyond the CRD's MaxItems is cut to it.
	for range 60 {
		AddTransition(&st, monitoringv1alpha1.TransitionRecord{Time: metav1.NewMicroTime(t0), State: monitoringv1alpha1.StateUp, Reason: "R"}, 1000)
	}
	g.Expect(st.RecentTransitions).To(HaveLen(monitoringv1alpha1.MaxHistoryLimit))
}

func TestShort(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Short("ok")).To(Equal("ok"))
	long := strings.Repeat("ä", 300) // two bytes each
	s := Short(long)
	g.Expect(len(s)).To(BeNumerically("<=", monitoringv1alpha1.MaxHistoryMessage))
	g.Expect(utf8.ValidString(s)).To(BeTrue())
	g.Expect(s).To(HaveSuffix("…"))
}
