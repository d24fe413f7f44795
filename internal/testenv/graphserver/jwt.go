package graphserver

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// assertionError is a client assertion refusal with its AADSTS code.
type assertionError struct {
	code int
	msg  string
}

func (e *assertionError) Error() string { return fmt.Sprintf("AADSTS%d: %s", e.code, e.msg) }

// jwtHeader is the JOSE header of a client assertion. Microsoft's
// certificate-credentials page documents RS256 with x5t (SHA-1 thumbprint)
// in older versions and PS256 with x5t#S256 (SHA-256) now; both are
// accepted (LIMITS.md).
type jwtHeader struct {
	Alg     string `json:"alg"`
	Typ     string `json:"typ"`
	X5t     string `json:"x5t"`
	X5tS256 string `json:"x5t#S256"`
	Kid     string `json:"kid"`
}

type jwtClaims struct {
	Aud json.RawMessage `json:"aud"`
	Iss string          `json:"iss"`
	Sub string          `json:"sub"`
	Jti string          `json:"jti"`
	Exp *float64        `json:"exp"`
	Nbf *float64        `json:"nbf"`
	Iat *float64        `json:"iat"`
}

// parsedJWT is a compact-serialised JWS split into its parts (RFC 7515
// section 7.1).
type parsedJWT struct {
	header    jwtHeader
	claims    jwtClaims
	audiences []string
	signed    []byte // ASCII(BASE64URL(header) || '.' || BASE64URL(payload))
	sig       []byte
}

// parseJWT parses without verifying. It is strict: three base64url parts
// without padding, JSON objects in the first two.
func parseJWT(s string) (*parsedJWT, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return nil, errors.New("a JWT has three dot-separated parts")
	}
	hb, err := b64url.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("header is not base64url: %w", err)
	}
	pb, err := b64url.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("payload is not base64url: %w", err)
	}
	sig, err := b64url.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("signature is not base64url: %w", err)
	}
	p := &parsedJWT{signed: []byte(parts[0] + "." + parts[1]), sig: sig}
	if err := json.Unmarshal(hb, &p.header); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if err := json.Unmarshal(pb, &p.claims); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	if len(p.claims.Aud) > 0 {
		var one string
		if err := json.Unmarshal(p.claims.Aud, &one); err == nil {
			p.audiences = []string{one}
		} else if err := json.Unmarshal(p.claims.Aud, &p.audiences); err != nil {
			return nil, errors.New("aud is neither a string nor an array of strings")
		}
	}
	return p, nil
}

// assertionSkew is the clock skew tolerated on exp and nbf.
const assertionSkew = 5 * time.Minute

// verifyClientAssertion checks a private_key_jwt client assertion the way
// the certificate-credentials page describes: signed by a registered
// certificate named by its thumbprint, aud the token endpoint, iss and sub
// the client id, within exp and nbf.
func verifyClientAssertion(assertion, clientID string, audiences []string, certs []*x509.Certificate, now time.Time) error {
	p, err := parseJWT(assertion)
	if err != nil {
		return &assertionError{50027, "JWT token is invalid or malformed: " + err.Error()}
	}
	var cert *x509.Certificate
	for _, c := range certs {
		s1 := sha1.Sum(c.Raw)
		s256 := sha256.Sum256(c.Raw)
		if (p.header.X5t != "" && p.header.X5t == b64url.EncodeToString(s1[:])) ||
			(p.header.X5tS256 != "" && p.header.X5tS256 == b64url.EncodeToString(s256[:])) {
			cert = c
			break
		}
	}
	if cert == nil {
		thumb := p.header.X5t
		if thumb == "" {
			thumb = p.header.X5tS256
		}
		return &assertionError{700027, fmt.Sprintf("Client assertion failed signature validation. [Reason - The key was not found., Thumbprint of key used by client: '%s']", thumb)}
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return &assertionError{700027, "Client assertion failed signature validation. [Reason - The certificate does not hold an RSA key.]"}
	}
	digest := sha256.Sum256(p.signed)
	switch p.header.Alg {
	case "RS256":
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], p.sig)
	case "PS256":
		err = rsa.VerifyPSS(pub, crypto.SHA256, digest[:], p.sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
	default:
		return &assertionError{700027, fmt.Sprintf("Client assertion failed signature validation. [Reason - The algorithm '%s' is not supported; use RS256 or PS256.]", p.header.Alg)}
	}
	if err != nil {
		return &assertionError{700027, "Client assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value.]"}
	}
	c := p.claims
	if c.Iss != clientID || c.Sub != clientID {
		return &assertionError{700021, fmt.Sprintf("Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials. (iss %q, sub %q)", c.Iss, c.Sub)}
	}
	audOK := false
	for _, a := range p.audiences {
		for _, want := range audiences {
			if a == want {
				audOK = true
			}
		}
	}
	if !audOK {
		return &assertionError{700212, fmt.Sprintf("No matching federated identity record found for presented assertion audience '%s'. The audience must be the token endpoint, %s.", strings.Join(p.audiences, ","), audiences[0])}
	}
	if c.Exp == nil {
		return &assertionError{50027, "JWT token is invalid or malformed: the exp claim is missing."}
	}
	exp := time.Unix(int64(*c.Exp), 0)
	if !now.Before(exp.Add(assertionSkew)) {
		return &assertionError{700024, fmt.Sprintf("Client assertion is not within its valid time range. Current time: %s, assertion valid to: %s.", now.UTC().Format(time.RFC3339), exp.UTC().Format(time.RFC3339))}
	}
	if c.Nbf != nil && now.Add(assertionSkew).Before(time.Unix(int64(*c.Nbf), 0)) {
		return &assertionError{700024, "Client assertion is not within its valid time range: nbf is in the future."}
	}
	if c.Jti == "" {
		return &assertionError{50027, "JWT token is invalid or malformed: the jti claim is missing."}
	}
	return nil
}
