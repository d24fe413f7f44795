package ewsserver

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strings"
	"time"
	"unicode/utf16"

	"golang.org/x/crypto/md4"
)

// NTLM over HTTP as IIS does it for Exchange: the client sends
// "Authorization: NTLM <NEGOTIATE_MESSAGE>", the server answers 401 with
// "WWW-Authenticate: NTLM <CHALLENGE_MESSAGE>", the client sends the
// AUTHENTICATE_MESSAGE on the same connection, and the connection is then
// authenticated for the requests that follow on it. Message layouts and
// the NTLMv2 computation are from [MS-NLMP] sections 2.2.1 and 3.3.2.
//
// Only NTLMv2 with Unicode strings is accepted, as on an Exchange server
// whose LAN Manager authentication level refuses LM and NTLMv1. The MIC
// and session keys are not checked: nothing is signed or sealed over HTTP.

const ntlmSignature = "NTLMSSP\x00"

// NegotiateFlags ([MS-NLMP] 2.2.2.5).
const (
	ntlmNegotiateUnicode          = 0x00000001
	ntlmRequestTarget             = 0x00000004
	ntlmNegotiateNTLM             = 0x00000200
	ntlmNegotiateAlwaysSign       = 0x00008000
	ntlmTargetTypeDomain          = 0x00010000
	ntlmNegotiateExtendedSecurity = 0x00080000
	ntlmNegotiateTargetInfo       = 0x00800000
	ntlmNegotiateVersion          = 0x02000000
	ntlmNegotiate128              = 0x20000000
	ntlmNegotiate56               = 0x80000000
)

// AV_PAIR ids ([MS-NLMP] 2.2.2.1).
const (
	avEOL             = 0
	avNbComputerName  = 1
	avNbDomainName    = 2
	avDNSComputerName = 3
	avDNSDomainName   = 4
	avTimestamp       = 7
)

type ntlmMessage []byte

func (m ntlmMessage) kind() (uint32, bool) {
	if len(m) < 12 || string(m[:8]) != ntlmSignature {
		return 0, false
	}
	return binary.LittleEndian.Uint32(m[8:12]), true
}

// field reads a Len/MaxLen/Offset triple at off and returns its payload.
func (m ntlmMessage) field(off int) ([]byte, error) {
	if off+8 > len(m) {
		return nil, errors.New("ntlm: message too short")
	}
	l := int(binary.LittleEndian.Uint16(m[off:]))
	o := int(binary.LittleEndian.Uint32(m[off+4:]))
	if l == 0 {
		return nil, nil
	}
	if o < 0 || o > len(m) || l > len(m)-o {
		return nil, errors.New("ntlm: field outside the message")
	}
	return m[o : o+l], nil
}

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		binary.LittleEndian.PutUint16(b[2*i:], r)
	}
	return b
}

func fromUTF16le(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// challengeMessage builds a CHALLENGE_MESSAGE ([MS-NLMP] 2.2.1.2) for the
// given server challenge.
func challengeMessage(challenge [8]byte, domain, computer string, now time.Time) []byte {
	var info bytes.Buffer
	av := func(id uint16, v []byte) {
		_ = binary.Write(&info, binary.LittleEndian, id)
		_ = binary.Write(&info, binary.LittleEndian, uint16(len(v)))
		info.Write(v)
	}
	av(avNbDomainName, utf16le(domain))
	av(avNbComputerName, utf16le(computer))
	av(avDNSDomainName, utf16le(strings.ToLower(domain)+".local"))
	av(avDNSComputerName, utf16le(strings.ToLower(computer)+"."+strings.ToLower(domain)+".local"))
	ts := make([]byte, 8)
	binary.LittleEndian.PutUint64(ts, uint64(now.UnixNano()/100+116444736000000000)) // FILETIME
	av(avTimestamp, ts)
	av(avEOL, nil)

	target := utf16le(domain)
	const header = 56
	flags := uint32(ntlmNegotiateUnicode | ntlmRequestTarget | ntlmNegotiateNTLM | ntlmNegotiateAlwaysSign |
		ntlmTargetTypeDomain | ntlmNegotiateExtendedSecurity | ntlmNegotiateTargetInfo | ntlmNegotiateVersion |
		ntlmNegotiate128 | ntlmNegotiate56)
	b := make([]byte, header, header+len(target)+info.Len())
	copy(b, ntlmSignature)
	binary.LittleEndian.PutUint32(b[8:], 2)
	binary.LittleEndian.PutUint16(b[12:], uint16(len(target)))
	binary.LittleEndian.PutUint16(b[14:], uint16(len(target)))
	binary.LittleEndian.PutUint32(b[16:], header)
	binary.LittleEndian.PutUint32(b[20:], flags)
	copy(b[24:32], challenge[:])
	binary.LittleEndian.PutUint16(b[40:], uint16(info.Len()))
	binary.LittleEndian.PutUint16(b[42:], uint16(info.Len()))
	binary.LittleEndian.PutUint32(b[44:], uint32(header+len(target)))
	// Version ([MS-NLMP] 2.2.2.10): Windows Server 2016 (10.0.14393),
	// NTLMSSP_REVISION_W2K3.
	b[48], b[49] = 10, 0
	binary.LittleEndian.PutUint16(b[50:], 14393)
	b[55] = 0x0F
	b = append(b, target...)
	b = append(b, info.Bytes()...)
	return b
}

func newChallenge() [8]byte {
	var c [8]byte
	_, _ = rand.Read(c[:])
	return c
}

// ntlmAuth is the parsed AUTHENTICATE_MESSAGE ([MS-NLMP] 2.2.1.3).
type ntlmAuth struct {
	user, domain, workstation string
	ntResponse                []byte
}

func parseAuthenticate(m ntlmMessage) (*ntlmAuth, error) {
	if k, ok := m.kind(); !ok || k != 3 {
		return nil, errors.New("ntlm: not an AUTHENTICATE_MESSAGE")
	}
	if len(m) < 64 {
		return nil, errors.New("ntlm: AUTHENTICATE_MESSAGE too short")
	}
	flags := binary.LittleEndian.Uint32(m[60:])
	if flags&ntlmNegotiateUnicode == 0 {
		return nil, errors.New("ntlm: OEM strings are not supported")
	}
	nt, err := m.field(20)
	if err != nil {
		return nil, err
	}
	dom, err := m.field(28)
	if err != nil {
		return nil, err
	}
	usr, err := m.field(36)
	if err != nil {
		return nil, err
	}
	ws, err := m.field(44)
	if err != nil {
		return nil, err
	}
	return &ntlmAuth{user: fromUTF16le(usr), domain: fromUTF16le(dom), workstation: fromUTF16le(ws), ntResponse: nt}, nil
}

// ntowfv2 is NTOWFv2 ([MS-NLMP] 3.3.2): HMAC_MD5(MD4(UNICODE(Passwd)),
// UNICODE(ConcatenationOf(Uppercase(User), UserDom))).
func ntowfv2(password, user, domain string) []byte {
	h := md4.New()
	h.Write(utf16le(password))
	mac := hmac.New(md5.New, h.Sum(nil))
	mac.Write(utf16le(strings.ToUpper(user) + domain))
	return mac.Sum(nil)
}

// verifyNTLMv2 checks NtChallengeResponse = NTProofStr || temp, where
// NTProofStr = HMAC_MD5(ResponseKeyNT, ServerChallenge || temp) and temp
// starts with Responserversion 1 and HiResponserversion 1 ([MS-NLMP]
// 2.2.2.7 and 3.3.2). A 24-byte response is NTLMv1 and is refused.
func verifyNTLMv2(a *ntlmAuth, challenge [8]byte, password string) bool {
	if len(a.ntResponse) < 16+28 {
		return false
	}
	proof, temp := a.ntResponse[:16], a.ntResponse[16:]
	if temp[0] != 1 || temp[1] != 1 {
		return false
	}
	mac := hmac.New(md5.New, ntowfv2(password, a.user, a.domain))
	mac.Write(challenge[:])
	mac.Write(temp)
	return hmac.Equal(mac.Sum(nil), proof)
}
