package ha

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pushmon/pushmon/internal/testutil"
)

// startPrometheus runs Debian's Prometheus with the given configuration
// (scrape and evaluation intervals, rule files, targets: the caller's) and
// returns its web address once its API answers. Its log is printed when the
// test fails.
func startPrometheus(t *testing.T, config string) string {
	t.Helper()
	bin := lookBin(t, "prometheus", "prometheus")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prom.yml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	runDaemon(t, "prometheus", addr, bin, "--config.file="+filepath.Join(dir, "prom.yml"), "--storage.tsdb.path="+dir,
		"--web.listen-address="+addr)
	return addr
}

// runDaemon starts bin with args (Prometheus or Alertmanager, listening on
// addr), ends it when the test ends, prints its log tail when the test
// failed, and returns once its /-/ready answers 200.
func runDaemon(t *testing.T, name, addr, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("--- %s ---\n%s", name, out.Tail(30))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not become ready: %v\n%s", name, err, out.Tail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// promSample is one series of an instant query's result.
type promSample struct {
	Labels map[string]string
	Time   time.Time
	Value  float64
}

// promQuery evaluates an instant PromQL query through Prometheus's HTTP
// API. A query Prometheus refuses (a syntax error, an unknown function) is
// an error with Prometheus's message.
func promQuery(addr, query string) ([]promSample, error) {
	resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %q: %d: %w", query, resp.StatusCode, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", query, body.Error)
	}
	if body.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %q: result type %s, want vector", query, body.Data.ResultType)
	}
	var out []promSample
	for _, r := range body.Data.Result {
		ts, _ := r.Value[0].(float64)
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: value %q: %w", query, s, err)
		}
		out = append(out, promSample{Labels: r.Metric, Time: time.Unix(0, int64(ts*float64(time.Second))), Value: v})
	}
	return out, nil
}
