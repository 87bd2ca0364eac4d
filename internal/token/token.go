// Package token issues push tokens and finds monitors by them.
//
// A token is 256 bits from crypto/rand, base64url-encoded without padding
// (43 characters, [A-Za-z0-9_-]). The push endpoint never compares tokens: it
// looks them up by their SHA-256 digest in an index of the Secrets pushmon
// labeled, so lookups cost the same whatever the token, and the digest is the
// only form of the token held anywhere but in the Secret.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// Bytes is the token's entropy in bytes (256 bits).
const Bytes = 32

// Length is the length of an encoded token.
var Length = base64.RawURLEncoding.EncodedLen(Bytes)

// Secret keys and labels pushmon uses on the Secrets it issues.
const (
	SecretKeyToken    = "token"
	SecretKeyURL      = "url"
	SecretKeyInterval = "interval"

	LabelManagedBy      = "app.kubernetes.io/managed-by"
	LabelManagedByValue = "pushmon"
	LabelMonitor        = "monitoring.pushmon.dev/monitor"
)

// PushPathPrefix is the path under which the push endpoint serves tokens.
const PushPathPrefix = "/api/push/"

// New returns a fresh random token.
func New() (string, error) {
	b := make([]byte, Bytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes for a push token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Digest is the hex SHA-256 of a token, the key it is looked up by.
func Digest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// WellFormed reports whether s has the shape of a token pushmon issues. The
// push endpoint answers malformed tokens exactly as unknown ones.
func WellFormed(s string) bool {
	if len(s) != Length {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// PushURL joins the push base URL and a token.
func PushURL(baseURL, token string) string {
	return strings.TrimRight(baseURL, "/") + PushPathPrefix + token
}
