package notify

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/smtp"
	"strings"
	"time"
)

// sendMail sends n as a plain-text mail: STARTTLS (required unless the
// channel opts out, and always with credentials), then AUTH PLAIN when the
// Secret holds a username.
func sendMail(ctx context.Context, c *Channel, n *Notification, pool *x509.CertPool) error {
	addr := c.Address()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("an Email address is host:port")
	}
	if c.Spec.Email == nil {
		return errors.New("type Email needs spec.email")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("SMTP %s: %w", addr, err)
	}
	// One deadline for the whole dialogue: a stalled server cannot hold
	// the delivery past its context.
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	_ = conn.SetDeadline(deadline)
	cl, err := smtp.NewClient(conn, host)
	if err != nil {
		_ = conn.Close()
		return fmt.Errorf("SMTP %s: %w", addr, err)
	}
	defer cl.Close()
	if err := cl.Hello("pushmon"); err != nil {
		return fmt.Errorf("SMTP %s: HELO: %w", addr, err)
	}
	user := c.secret(KeyUsername)
	if ok, _ := cl.Extension("STARTTLS"); ok {
		if err := cl.StartTLS(&tls.Config{ServerName: host, RootCAs: pool, MinVersion: tls.VersionTLS12}); err != nil {
			return fmt.Errorf("SMTP %s: STARTTLS: %w", addr, err)
		}
	} else if !c.Spec.Email.InsecureSkipStartTLS || user != "" {
		return fmt.Errorf("SMTP %s does not offer STARTTLS", addr)
	}
	if user != "" {
		if err := cl.Auth(smtp.PlainAuth("", user, c.secret(KeyPassword), host)); err != nil {
			return fmt.Errorf("SMTP %s: AUTH: %w", addr, err)
		}
	}
	if err := cl.Mail(c.Spec.Email.From); err != nil {
		return fmt.Errorf("SMTP %s: MAIL FROM: %w", addr, err)
	}
	for _, to := range c.Spec.Email.To {
		if err := cl.Rcpt(to); err != nil {
			return fmt.Errorf("SMTP %s: RCPT TO %s: %w", addr, to, err)
		}
	}
	w, err := cl.Data()
	if err != nil {
		return fmt.Errorf("SMTP %s: DATA: %w", addr, err)
	}
	if _, err := w.Write(mailBody(c, n)); err != nil {
		return fmt.Errorf("SMTP %s: DATA: %w", addr, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("SMTP %s: DATA: %w", addr, err)
	}
	return cl.Quit()
}

func mailBody(c *Channel, n *Notification) []byte {
	var id [12]byte
	_, _ = rand.Read(id[:])
	var b strings.Builder
	h := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	h("From", c.Spec.Email.From)
	h("To", strings.Join(c.Spec.Email.To, ", "))
	h("Subject", mime.QEncoding.Encode("utf-8", n.Title()))
	h("Date", n.Time.UTC().Format(time.RFC1123Z))
	h("Message-ID", "<"+hex.EncodeToString(id[:])+"@pushmon>")
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "8bit")
	h("X-Pushmon-Event", string(n.Event))
	b.WriteString("\r\n")
	// The DATA writer does the dot-stuffing.
	for _, l := range strings.Split(n.Text(), "\n") {
		b.WriteString(l + "\r\n")
	}
	return []byte(b.String())
}
