package graphserver

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// msgPatch is a parsed JSON message body: the properties given, each nil
// when absent.
type msgPatch struct {
	subject, messageID, importance, inference *string
	body                                      *itemBody
	from, sender                              *recipient
	to, cc, bcc, replyTo                      *[]recipient
	isRead, deliveryRcpt, readRcpt            *bool
	categories                                *[]string
	flagStatus                                *string
	flagExtra                                 map[string]any
	headers                                   *[]header
	ext                                       []extProp
	attachments                               []*attachment
	draftOnly                                 []string // names of draft-only properties given
}

type itemBody struct{ typ, content string }

// readOnlyMessageProps are documented message properties that cannot be
// written; like the real service the server ignores them in a body.
var readOnlyMessageProps = map[string]bool{
	"id": true, "createddatetime": true, "lastmodifieddatetime": true, "changekey": true, "receiveddatetime": true,
	"sentdatetime": true, "hasattachments": true, "bodypreview": true, "isdraft": true, "parentfolderid": true,
	"conversationid": true, "conversationindex": true, "weblink": true, "uniquebody": true, "@odata.etag": true,
	"@odata.context": true, "@odata.type": true,
}

const msgType = "microsoft.graph.message"

func convErr(raw json.RawMessage, edm string) *graphError {
	return errBodyRead("Cannot convert the literal '%s' to the expected type '%s'.", strings.Trim(string(raw), `"`), edm)
}

// parseMessageJSON reads a message body for create (attachments allowed)
// or update, refusing unknown properties and values of the wrong type.
func parseMessageJSON(body []byte, create bool) (*msgPatch, *graphError) {
	props, gerr := decodeObject(body, msgType)
	if gerr != nil {
		return nil, gerr
	}
	p := &msgPatch{}
	str := func(raw json.RawMessage) (*string, *graphError) {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, convErr(raw, "Edm.String")
		}
		return &v, nil
	}
	boolean := func(raw json.RawMessage) (*bool, *graphError) {
		var v bool
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, convErr(raw, "Edm.Boolean")
		}
		return &v, nil
	}
	for k, raw := range props {
		var gerr *graphError
		switch lk := strings.ToLower(k); lk {
		case "subject":
			p.subject, gerr = str(raw)
			p.draftOnly = append(p.draftOnly, "subject")
		case "internetmessageid":
			p.messageID, gerr = str(raw)
			p.draftOnly = append(p.draftOnly, "internetMessageId")
		case "importance":
			if p.importance, gerr = str(raw); gerr == nil {
				v := strings.ToLower(*p.importance)
				if v != "low" && v != "normal" && v != "high" {
					gerr = errBodyRead("The value '%s' is not valid for type 'microsoft.graph.importance'.", *p.importance)
				}
				p.importance = &v
			}
		case "inferenceclassification":
			if p.inference, gerr = str(raw); gerr == nil {
				v := strings.ToLower(*p.inference)
				if v != "focused" && v != "other" {
					gerr = errBodyRead("The value '%s' is not valid for type 'microsoft.graph.inferenceClassificationType'.", *p.inference)
				}
				p.inference = &v
			}
		case "body":
			var b itemBody
			b, gerr = parseItemBody(raw)
			p.body = &b
			p.draftOnly = append(p.draftOnly, "body")
		case "from", "sender":
			var r *recipient
			r, gerr = parseRecipient(raw)
			if lk == "from" {
				p.from = r
			} else {
				p.sender = r
			}
			p.draftOnly = append(p.draftOnly, k)
		case "torecipients", "ccrecipients", "bccrecipients", "replyto":
			var arr []json.RawMessage
			if err := json.Unmarshal(raw, &arr); err != nil {
				gerr = errBodyRead("A collection of 'microsoft.graph.recipient' was expected for property '%s'.", k)
				break
			}
			rs := []recipient{}
			for _, a := range arr {
				r, e := parseRecipient(a)
				if e != nil {
					gerr = e
					break
				}
				rs = append(rs, *r)
			}
			switch lk {
			case "torecipients":
				p.to = &rs
			case "ccrecipients":
				p.cc = &rs
			case "bccrecipients":
				p.bcc = &rs
			default:
				p.replyTo = &rs
				p.draftOnly = append(p.draftOnly, "replyTo")
			}
		case "isread":
			p.isRead, gerr = boolean(raw)
		case "isdeliveryreceiptrequested":
			p.deliveryRcpt, gerr = boolean(raw)
		case "isreadreceiptrequested":
			p.readRcpt, gerr = boolean(raw)
		case "categories":
			var v []string
			if err := json.Unmarshal(raw, &v); err != nil {
				gerr = errBodyRead("A collection of 'Edm.String' was expected for property 'categories'.")
			}
			p.categories = &v
		case "flag":
			gerr = p.parseFlag(raw)
		case "internetmessageheaders":
			gerr = p.parseHeaders(raw)
		case "singlevalueextendedproperties":
			gerr = p.parseExt(raw)
		case "attachments":
			if !create {
				gerr = errBodyRead("The property 'attachments' cannot be updated; use the attachments navigation property.")
				break
			}
			gerr = p.parseAttachments(raw)
		default:
			if !readOnlyMessageProps[lk] {
				gerr = errUnknownProperty(k, msgType)
			}
		}
		if gerr != nil {
			return nil, gerr
		}
	}
	return p, nil
}

func parseItemBody(raw json.RawMessage) (itemBody, *graphError) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return itemBody{}, errBodyRead("An object of type 'microsoft.graph.itemBody' was expected for property 'body'.")
	}
	b := itemBody{typ: "text"}
	for k, v := range m {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return b, convErr(v, "Edm.String")
		}
		switch strings.ToLower(k) {
		case "contenttype":
			switch strings.ToLower(s) {
			case "text", "html":
				b.typ = strings.ToLower(s)
			case "":
			default:
				return b, errBodyRead("The value '%s' is not valid for type 'microsoft.graph.bodyType'.", s)
			}
		case "content":
			b.content = s
		case "@odata.type":
		default:
			return b, errUnknownProperty(k, "microsoft.graph.itemBody")
		}
	}
	return b, nil
}

func parseRecipient(raw json.RawMessage) (*recipient, *graphError) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errBodyRead("An object of type 'microsoft.graph.recipient' was expected.")
	}
	r := &recipient{}
	for k, v := range m {
		switch strings.ToLower(k) {
		case "emailaddress":
			var e map[string]json.RawMessage
			if err := json.Unmarshal(v, &e); err != nil {
				return nil, errBodyRead("An object of type 'microsoft.graph.emailAddress' was expected.")
			}
			for ek, ev := range e {
				var s string
				if err := json.Unmarshal(ev, &s); err != nil {
					return nil, convErr(ev, "Edm.String")
				}
				switch strings.ToLower(ek) {
				case "name":
					r.Name = s
				case "address":
					r.Address = s
				default:
					return nil, errUnknownProperty(ek, "microsoft.graph.emailAddress")
				}
			}
		case "@odata.type":
		default:
			return nil, errUnknownProperty(k, "microsoft.graph.recipient")
		}
	}
	return r, nil
}

func (p *msgPatch) parseFlag(raw json.RawMessage) *graphError {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return errBodyRead("An object of type 'microsoft.graph.followupFlag' was expected for property 'flag'.")
	}
	p.flagExtra = map[string]any{}
	for k, v := range m {
		switch lk := strings.ToLower(k); lk {
		case "flagstatus":
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return convErr(v, "microsoft.graph.followupFlagStatus")
			}
			canon := map[string]string{"notflagged": "notFlagged", "flagged": "flagged", "complete": "complete"}[strings.ToLower(s)]
			if canon == "" {
				return errBodyRead("The value '%s' is not valid for type 'microsoft.graph.followupFlagStatus'.", s)
			}
			p.flagStatus = &canon
		case "startdatetime", "duedatetime", "completeddatetime":
			var dt map[string]string
			if err := json.Unmarshal(v, &dt); err != nil || dt["dateTime"] == "" {
				return errBodyRead("An object of type 'microsoft.graph.dateTimeTimeZone' with dateTime and timeZone was expected for property '%s'.", k)
			}
			p.flagExtra[map[string]string{"startdatetime": "startDateTime", "duedatetime": "dueDateTime", "completeddatetime": "completedDateTime"}[lk]] = dt
		case "@odata.type":
		default:
			return errUnknownProperty(k, "microsoft.graph.followupFlag")
		}
	}
	return nil
}

// parseHeaders accepts internetMessageHeaders; the service takes only
// custom headers, whose names start with x- (user-post-messages).
func (p *msgPatch) parseHeaders(raw json.RawMessage) *graphError {
	var arr []map[string]string
	if err := json.Unmarshal(raw, &arr); err != nil {
		return errBodyRead("A collection of 'microsoft.graph.internetMessageHeader' was expected for property 'internetMessageHeaders'.")
	}
	hs := []header{}
	for _, h := range arr {
		var name, value string
		for k, v := range h {
			switch strings.ToLower(k) {
			case "name":
				name = v
			case "value":
				value = v
			default:
				return errUnknownProperty(k, "microsoft.graph.internetMessageHeader")
			}
		}
		if !strings.HasPrefix(strings.ToLower(name), "x-") {
			return newError(http.StatusBadRequest, "InvalidInternetMessageHeader", "The internet message header name '%s' should start with 'x-' or 'X-'.", name)
		}
		hs = append(hs, header{name, value})
	}
	p.headers = &hs
	return nil
}

func (p *msgPatch) parseExt(raw json.RawMessage) *graphError {
	var arr []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &arr); err != nil {
		return errBodyRead("A collection of 'microsoft.graph.singleValueLegacyExtendedProperty' was expected.")
	}
	for _, e := range arr {
		var id, value string
		for k, v := range e {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return convErr(v, "Edm.String")
			}
			switch strings.ToLower(k) {
			case "id":
				id = s
			case "value":
				value = s
			case "@odata.type":
			default:
				return errUnknownProperty(k, "microsoft.graph.singleValueLegacyExtendedProperty")
			}
		}
		pid, err := parseExtPropID(id)
		if err != nil {
			return newError(http.StatusBadRequest, "ErrorInvalidExtendedProperty", "The extended property attribute combination is invalid.")
		}
		if gerr := checkExtValue(pid, value); gerr != nil {
			return gerr
		}
		p.ext = append(p.ext, extProp{id: pid, value: value})
	}
	return nil
}

// checkExtValue checks that value is a valid string form of the type, and
// that the properties the server gives meaning to have their MAPI types.
func checkExtValue(id extPropID, value string) *graphError {
	bad := func() *graphError {
		return newError(http.StatusBadRequest, "ErrorInvalidExtendedPropertyValue", "The value '%s' is not valid for the extended property of type %s.", value, id.typ)
	}
	if id.kind == 't' {
		want := map[uint32]string{tagMessageFlags: extTypeInteger, tagDeliveryTime: extTypeSystemTime, tagClientSubmit: extTypeSystemTime}[id.tag]
		if want != "" && want != id.typ {
			return newError(http.StatusBadRequest, "ErrorInvalidExtendedProperty", "The extended property attribute combination is invalid.")
		}
	}
	switch id.typ {
	case "Integer", "Short":
		if _, err := strconv.ParseInt(value, 10, 32); err != nil {
			return bad()
		}
	case "Long", "Currency":
		if _, err := strconv.ParseInt(value, 10, 64); err != nil {
			return bad()
		}
	case "Boolean":
		if value != "true" && value != "false" {
			return bad()
		}
	case "SystemTime", "ApplicationTime":
		if _, err := time.Parse(time.RFC3339Nano, value); err != nil {
			return bad()
		}
	case "Binary":
		if _, err := base64.StdEncoding.DecodeString(value); err != nil {
			return bad()
		}
	case "Double", "Float":
		if _, err := strconv.ParseFloat(value, 64); err != nil {
			return bad()
		}
	}
	return nil
}

func (p *msgPatch) parseAttachments(raw json.RawMessage) *graphError {
	var arr []json.RawMessage
	if err := json.Unmarshal(raw, &arr); err != nil {
		return errBodyRead("A collection of 'microsoft.graph.attachment' was expected for property 'attachments'.")
	}
	for _, a := range arr {
		att, gerr := parseFileAttachment(a)
		if gerr != nil {
			return gerr
		}
		att.via = "create"
		p.attachments = append(p.attachments, att)
	}
	return nil
}

// parseFileAttachment reads a fileAttachment (message-post-attachments).
// Only file attachments are supported (LIMITS.md).
func parseFileAttachment(raw json.RawMessage) (*attachment, *graphError) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errBodyRead("An object of type 'microsoft.graph.attachment' was expected.")
	}
	a := &attachment{}
	var typ string
	var hasContent bool
	for k, v := range m {
		var gerr *graphError
		switch strings.ToLower(k) {
		case "@odata.type":
			_ = json.Unmarshal(v, &typ)
		case "name":
			gerr = unmarshalStr(v, &a.name)
		case "contenttype":
			gerr = unmarshalStr(v, &a.contentType)
		case "contentid":
			gerr = unmarshalStr(v, &a.contentID)
		case "contentlocation":
		case "isinline":
			if err := json.Unmarshal(v, &a.isInline); err != nil {
				gerr = convErr(v, "Edm.Boolean")
			}
		case "contentbytes":
			var s string
			if gerr = unmarshalStr(v, &s); gerr == nil {
				b, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					gerr = errBodyRead("The value of 'contentBytes' is not a valid base64 string.")
				}
				a.content, hasContent = b, true
			}
		case "size", "id", "lastmodifieddatetime":
		default:
			gerr = errUnknownProperty(k, "microsoft.graph.fileAttachment")
		}
		if gerr != nil {
			return nil, gerr
		}
	}
	switch strings.TrimPrefix(typ, "#") {
	case "microsoft.graph.fileAttachment":
	case "":
		return nil, errBodyRead("Cannot create an abstract class. The @odata.type of the attachment must be given, e.g. #microsoft.graph.fileAttachment.")
	default:
		return nil, newError(http.StatusBadRequest, "ErrorInvalidRequest", "Attachments of type '%s' are not supported by this test server; only #microsoft.graph.fileAttachment is.", typ)
	}
	if a.name == "" || !hasContent {
		return nil, newError(http.StatusBadRequest, "ErrorInvalidRequest", "A file attachment needs a name and contentBytes.")
	}
	return a, nil
}

func unmarshalStr(v json.RawMessage, dst *string) *graphError {
	if err := json.Unmarshal(v, dst); err != nil {
		return convErr(v, "Edm.String")
	}
	return nil
}
