package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// No Docker engine runs the Dockerfile here, so this keeps it honest by
// text: its go build is `make build`'s, its Go is go.mod's, its runtime is
// distroless as a numeric non-root user.
func TestDockerfile(t *testing.T) {
	g := NewWithT(t)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(root, name))
		g.Expect(err).NotTo(HaveOccurred())
		return string(b)
	}
	dockerfile, makefile, gomod := read("Dockerfile"), read("Makefile"), read("go.mod")

	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(gomod)
	g.Expect(goVersion).To(HaveLen(2), "go directive in go.mod")
	g.Expect(dockerfile).To(MatchRegexp(`(?m)^FROM .*golang:%s(\s|-|$)`, regexp.QuoteMeta(goVersion[1])))
	g.Expect(dockerfile).To(MatchRegexp(`(?m)^FROM gcr.io/distroless/static:nonroot$`))
	g.Expect(dockerfile).To(MatchRegexp(`(?m)^USER 65532:65532$`))
	g.Expect(dockerfile).To(MatchRegexp(`(?m)^ENTRYPOINT \["/manager"\]$`))

	inDocker := goBuild(t, dockerfile, `(?m)^RUN .*go build .*$`)
	inMake := goBuild(t, makefile, `(?m)^build:.*\n\t(.*go build .*)$`)
	g.Expect(inDocker).To(Equal(inMake))
}

// goBuild finds the go build line re matches in text and returns what must
// agree between builds: CGO_ENABLED, the flags and the package, not the
// output path or the target platform.
func goBuild(t *testing.T, text, re string) []string {
	t.Helper()
	line := regexp.MustCompile(re).FindString(text)
	if line == "" {
		t.Fatalf("no go build line matching %s", re)
	}
	var out []string
	fields := strings.Fields(line[strings.Index(line, "\n")+1:])
	for i := 0; i < len(fields); i++ {
		switch f := fields[i]; {
		case strings.HasPrefix(f, "CGO_ENABLED="):
			out = append(out, f)
		case f == "-o":
			i++ // the output path differs
		case strings.HasPrefix(f, "-") || strings.HasPrefix(f, "./"):
			out = append(out, f)
		}
	}
	if len(out) == 0 || !strings.HasPrefix(out[0], "CGO_ENABLED=0") {
		t.Fatalf("go build without CGO_ENABLED=0 first: %q", line)
	}
	return out
}
