package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pushmon/pushmon/internal/token"
)

// pingPathPrefix is push.PingPathPrefix (a test holds them equal), not
// imported so that the plugin does not link the push server.
const pingPathPrefix = "/ping/"

// pushFlags are push's and ping's: where to send, and how long to wait.
type pushFlags struct {
	baseURL string
	timeout time.Duration
}

func (f *pushFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.baseURL, "base-url", "",
		"push endpoint base to use instead of the Secret's (e.g. http://localhost:8082 with "+
			"kubectl -n pushmon-system port-forward svc/pushmon-push 8082)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 10*time.Second, "how long to wait for the push endpoint's answer")
}

// base is the push endpoint base the request goes to.
func (f *pushFlags) base(ps *pushSecret) (string, error) {
	if f.baseURL == "" {
		return ps.baseURL(), nil
	}
	u, err := url.Parse(f.baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--base-url %q: want http(s)://host[:port]", f.baseURL)
	}
	return strings.TrimRight(f.baseURL, "/"), nil
}

func newPushCommand(o *Options) *cobra.Command {
	var f pushFlags
	var status, msg, value string
	cmd := &cobra.Command{
		Use:               "push NAME",
		ValidArgsFunction: o.completeNames(1),
		Short:             "Send one heartbeat to a monitor, as its client would (/api/push)",
		Example: `  kubectl pushmon push nightly-backup
  kubectl pushmon push nightly-backup --status down --msg "disk full"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			switch s := strings.ToLower(status); s {
			case "up", "down":
				q.Set("status", s)
			default:
				return fmt.Errorf("--status %q: must be up or down", status)
			}
			if msg != "" {
				q.Set("msg", msg)
			}
			if value != "" {
				q.Set("value", value)
			}
			return o.send(cmd.Context(), &f, args[0], "push", func(base, tok string) string {
				return token.PushURL(base, tok) + "?" + q.Encode()
			}, "", "status="+q.Get("status"))
		},
	}
	cmd.Flags().StringVar(&status, "status", "up", "up or down (down turns the monitor Down at once)")
	cmd.Flags().StringVar(&msg, "msg", "", "message stored in status.lastMessage")
	cmd.Flags().StringVar(&value, "value", "", "a number stored in status.lastValue")
	f.add(cmd)
	return cmd
}

func newPingCommand(o *Options) *cobra.Command {
	var f pushFlags
	var rid, msg string
	cmd := &cobra.Command{
		Use:               "ping NAME [start|fail|log|EXIT-CODE]",
		ValidArgsFunction: o.completeNames(1, "start", "fail", "log", "0"),
		Short:             "Send a Healthchecks-style run signal to a monitor (/ping)",
		Long: "ping sends what a Healthchecks client sends: no signal is a success, start opens a run,\n" +
			"fail or a non-zero exit code (0-255) closes it failed, log only records --msg.",
		Example: `  kubectl pushmon ping nightly-backup start --rid run-42
  kubectl pushmon ping nightly-backup 3 --rid run-42 --msg "rsync: connection reset"`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			signal := ""
			if len(args) == 2 {
				signal = args[1]
				switch signal {
				case "start", "fail", "log":
				default:
					if n, err := strconv.Atoi(signal); err != nil || n < 0 || n > 255 || strconv.Itoa(n) != signal {
						return fmt.Errorf("signal %q: want start, fail, log or an exit code 0-255", signal)
					}
				}
			}
			q := url.Values{}
			if rid != "" {
				q.Set("rid", rid)
			}
			what := "success"
			if signal != "" {
				what = signal
			}
			return o.send(cmd.Context(), &f, args[0], "ping", func(base, tok string) string {
				u := strings.TrimRight(base, "/") + pingPathPrefix + tok
				if signal != "" {
					u += "/" + signal
				}
				if len(q) > 0 {
					u += "?" + q.Encode()
				}
				return u
			}, msg, what)
		},
	}
	cmd.Flags().StringVar(&rid, "rid", "", "run ID pairing a start with its end when runs overlap")
	cmd.Flags().StringVar(&msg, "msg", "", "body sent with the ping (the message, as a script's output)")
	f.add(cmd)
	return cmd
}

// send POSTs to the URL build makes of the push base and the monitor's
// token, and prints the endpoint's answer. Nothing it prints or returns
// holds the token.
func (o *Options) send(ctx context.Context, f *pushFlags, name, verb string, build func(base, tok string) string, body, what string) error {
	m, err := o.getMonitor(ctx, name)
	if err != nil {
		return err
	}
	ps, err := o.readPushSecret(ctx, m)
	if err != nil {
		return err
	}
	base, err := f.base(ps)
	if err != nil {
		return err
	}
	method, err := sendMethod(m.Spec.AllowedMethods, served[verb], body != "")
	if err != nil {
		return fmt.Errorf("%s to %s/%s: %w", verb, m.Namespace, m.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, build(base, ps.token), strings.NewReader(body))
	if err != nil {
		return redact(err, ps.token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	}
	hc := &http.Client{
		// A redirect (an ingress sending http to https) would resend the
		// token somewhere else; say it instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := hc.Do(req)
	if err != nil {
		err = fmt.Errorf("%s %s to %s: %w", verb, what, base, redact(unwrapURLError(err), ps.token))
		if f.baseURL == "" {
			// The Secret's URL normally names the in-cluster Service.
			err = fmt.Errorf("%w (outside the cluster: kubectl -n pushmon-system port-forward svc/pushmon-push 8082, then --base-url http://localhost:8082)", err)
		}
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return fmt.Errorf("%s %s to %s: reading the answer: %w", verb, what, base, redact(err, ps.token))
	}
	text := redactString(strings.TrimSpace(string(answer)), ps.token)
	switch {
	case resp.StatusCode == http.StatusOK:
		// A HEAD ping is answered without a body.
		fmt.Fprintln(o.Out, strings.TrimSpace(fmt.Sprintf("%s %s sent to %s: %d %s", verb, what, ps.monitor, resp.StatusCode, text)))
		return nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return fmt.Errorf("%s %s to %s: answered %d, a redirect to %s (not followed: it would carry the token); use --base-url with the address it points to",
			verb, what, ps.monitor, resp.StatusCode, redactString(resp.Header.Get("Location"), ps.token))
	default:
		return fmt.Errorf("%s %s to %s: answered %d %s", verb, what, ps.monitor, resp.StatusCode, text)
	}
}

// served are the methods each route serves, in the order the plugin
// prefers them (docs/push-endpoint.md).
var served = map[string][]string{
	"push": {http.MethodPost, http.MethodGet},
	"ping": {http.MethodPost, http.MethodGet, http.MethodHead},
}

// sendMethod is the first method the route serves that the monitor's
// spec.allowedMethods (all when empty) allow; HEAD only when no body is sent.
func sendMethod(allowed, served []string, withBody bool) (string, error) {
	for _, m := range served {
		if m == http.MethodHead && withBody {
			continue
		}
		if len(allowed) == 0 || slices.Contains(allowed, m) {
			return m, nil
		}
	}
	return "", fmt.Errorf("spec.allowedMethods %v allow none of %v here", allowed, served)
}

// unwrapURLError drops net/http's `Post "<url>": ` prefix, which holds the
// token.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redact replaces the token in err's message, in case any layer put the
// URL in it after all.
func redact(err error, tok string) error {
	if err == nil || tok == "" || !strings.Contains(err.Error(), tok) {
		return err
	}
	return errors.New(redactString(err.Error(), tok))
}

func redactString(s, tok string) string {
	if tok == "" {
		return s
	}
	return strings.ReplaceAll(s, tok, "<token>")
}

func newURLCommand(o *Options) *cobra.Command {
	var ping bool
	cmd := &cobra.Command{
		Use:               "url NAME",
		ValidArgsFunction: o.completeNames(1),
		Short:             "Print a monitor's push URL (it contains the secret token)",
		Long: "url prints the push URL from the monitor's Secret on stdout, and a warning on stderr:\n" +
			"the URL holds the token, and anyone with it can push for the monitor.",
		Example: `  export PUSH_URL=$(kubectl pushmon url nightly-backup)
  kubectl pushmon url nightly-backup --ping   # the Healthchecks-style /ping/<token> base`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := o.getMonitor(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			ps, err := o.readPushSecret(cmd.Context(), m)
			if err != nil {
				return err
			}
			u := ps.url
			if ping {
				u = ps.baseURL() + pingPathPrefix + ps.token
			}
			fmt.Fprintf(o.ErrOut, "warning: this URL contains the push token of %s; anyone holding it can push for the monitor: keep it out of logs, tickets and chats\n", ps.monitor)
			_, err = fmt.Fprintln(o.Out, u)
			return err
		},
	}
	cmd.Flags().BoolVar(&ping, "ping", false, "print the Healthchecks-style ping URL (<base>/ping/<token>) instead")
	return cmd
}
