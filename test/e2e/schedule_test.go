package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
)

// A schedule or time zone that does not parse is refused at apply time by
// pushmon's validating webhook, with the parser's message; a valid one is
// stored and shows its next run in kubectl get -o wide.
func TestScheduleValidatedAtApply(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "schedule")
	apply := func(name, schedule, tz string) (string, error) {
		f := filepath.Join(t.TempDir(), name+".yaml")
		doc := "apiVersion: monitoring.pushmon.dev/v1alpha1\nkind: PushMonitor\nmetadata:\n  name: " + name +
			"\n  namespace: " + ns + "\nspec:\n  schedule: \"" + schedule + "\"\n"
		if tz != "" {
			doc += "  timeZone: " + tz + "\n"
		}
		g.Expect(os.WriteFile(f, []byte(doc), 0o600)).To(Succeed())
		return runKubectl(ctx, "apply", "-f", f)
	}

	out, err := apply("bad-schedule", "61 * * * *", "")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring(`spec.schedule: Invalid value: "61 * * * *": invalid schedule "61 * * * *": end of range (61) above maximum (59): 61`))
	t.Logf("kubectl apply of a bad schedule: %s", out)

	out, err = apply("bad-zone", "30 2 * * *", "Europe/Atlantis")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring(`spec.timeZone: Invalid value: "Europe/Atlantis": unknown time zone "Europe/Atlantis"`))

	out, err = apply("nightly", "30 2 * * *", "Europe/Berlin")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Eventually(func(g Gomega) {
		out, err := runKubectl(ctx, "-n", ns, "get", "pm", "nightly", "-o", "wide")
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(out).To(ContainSubstring("NEXT RUN"))
		g.Expect(out).To(MatchRegexp(`Pending .*T0[01]:30:00Z`)) // 02:30 in Berlin is 00:30 or 01:30 UTC
	}).Should(Succeed())

	// Updates are checked too.
	out, err = apply("nightly", "@sometimes", "Europe/Berlin")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring(`invalid schedule "@sometimes"`))
}
