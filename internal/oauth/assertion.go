package oauth

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// assertionLifetime is how long a client assertion is valid. The
// certificate-credentials page asks for a short one, "5-10 minutes
// after nbf at most".
const assertionLifetime = 10 * time.Minute

// clientAssertion builds the signed JWT of Microsoft's
// certificate-credentials page (learn.microsoft.com/entra/identity-platform/
// certificate-credentials): header alg PS256, typ JWT and x5t#S256 (the
// base64url SHA-256 thumbprint of the certificate's DER); claims aud =
// the token endpoint, iss = sub = the client id, a fresh jti, nbf = iat =
// now, exp. PS256 is RSASSA-PSS with SHA-256 and a salt the size of the
// hash (RFC 7518 §3.5).
func clientAssertion(clientID, tokenURL string, cert *x509.Certificate, key *rsa.PrivateKey, now time.Time) (string, error) {
	thumb := sha256.Sum256(cert.Raw)
	header, err := json.Marshal(map[string]string{
		"alg":      "PS256",
		"typ":      "JWT",
		"x5t#S256": base64.RawURLEncoding.EncodeToString(thumb[:]),
	})
	if err != nil {
		return "", err
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	jti[6] = jti[6]&0x0f | 0x40 // a version 4 UUID, as the page shows
	jti[8] = jti[8]&0x3f | 0x80
	claims, err := json.Marshal(map[string]any{
		"aud": tokenURL,
		"iss": clientID,
		"sub": clientID,
		"jti": fmt.Sprintf("%x-%x-%x-%x-%x", jti[0:4], jti[4:6], jti[6:8], jti[8:10], jti[10:]),
		"nbf": now.Unix(),
		"iat": now.Unix(),
		"exp": now.Add(assertionLifetime).Unix(),
	})
	if err != nil {
		return "", err
	}
	signingInput := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(claims)
	digest := sha256.Sum256([]byte(signingInput))
	sig, err := rsa.SignPSS(rand.Reader, key, crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	if err != nil {
		return "", err
	}
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// ParseCertificatePEM reads a certificate and its RSA private key from
// PEM blocks (CERTIFICATE, and PRIVATE KEY or RSA PRIVATE KEY), in any
// order, as exported by `openssl req -x509 -newkey rsa:2048 -nodes`.
// Encrypted keys are refused: decrypt the key first. The key itself never
// appears in an error.
func ParseCertificatePEM(data []byte) (*x509.Certificate, *rsa.PrivateKey, error) {
	var cert *x509.Certificate
	var key *rsa.PrivateKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			if cert != nil {
				continue // a chain: the first is the app's
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("read the certificate: %w", err)
			}
			cert = c
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, nil, errors.New("the private key cannot be read (PKCS #8)")
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, nil, errors.New("the private key is not an RSA key; Microsoft Entra certificates need RSA")
			}
			key = rk
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, nil, errors.New("the private key cannot be read (PKCS #1)")
			}
			key = k
		case "ENCRYPTED PRIVATE KEY":
			return nil, nil, errors.New("the private key is encrypted: decrypt it first (openssl pkey -in key.pem -out plain.pem)")
		}
	}
	if cert == nil {
		return nil, nil, errors.New("no CERTIFICATE block in the PEM data")
	}
	if key == nil {
		return nil, nil, errors.New("no private key block in the PEM data: give the certificate and its key in one file")
	}
	return cert, key, nil
}
