// Package token issues push tokens and finds monitors by them.
//
// A token is 256 bits from crypto/rand, base64url-encoded without padding
// (43 characters, [A-Za-z0-9_-]). The push endpoint never compares tokens: it
// looks them up by their SHA-256 digest in an index of the Secrets pushmon
// labeled, so lookups cost the same whatever the token, and the digest is the
// only form of the token held anywhere but in the Secret. The one comparison
// left (of digests, to tell the current token from the previous one after a
// rotation) is constant-time.
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
)

// Annotations of token rotation. The monitor carries AnnotationRotateToken
// (set by the user); the Secret records what pushmon did about it, so that
// the monitor's status never needs to carry anything about the token.
const (
	// AnnotationRotateToken on a PushMonitor asks for a new token whenever
	// its value differs from the one last acted on.
	AnnotationRotateToken = "monitoring.pushmon.dev/rotate-token"
	// AnnotationRotatedFor on the Secret is the rotate-token value last
	// acted on.
	AnnotationRotatedFor = "monitoring.pushmon.dev/rotated-for"
	// AnnotationTokenIssued on the Secret is when its token was issued
	// (RFC 3339), mirrored into status.tokenIssuedTime.
	AnnotationTokenIssued = "monitoring.pushmon.dev/token-issued"
	// AnnotationPreviousDigest on the Secret is the SHA-256 digest (never
	// the token) of the token replaced by the last rotation, valid until
	// AnnotationPreviousExpires (RFC 3339).
	AnnotationPreviousDigest  = "monitoring.pushmon.dev/previous-token-sha256"
	AnnotationPreviousExpires = "monitoring.pushmon.dev/previous-token-expires"
	// AnnotationMovedFrom, on a Secret a token moved into when
	// spec.secretName changed, names the Secret it moved from; that one is
	// deleted, and this annotation dropped, once status names the new one.
	AnnotationMovedFrom = "monitoring.pushmon.dev/moved-from"
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

// wellFormedDigest reports whether s looks like a Digest, so that a
// hand-edited annotation cannot put arbitrary strings into the index.
func wellFormedDigest(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// PushURL joins the push base URL and a token.
func PushURL(baseURL, token string) string {
	return strings.TrimRight(baseURL, "/") + PushPathPrefix + token
}
