package ewsserver

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// propKey identifies an extended property the way ExtendedFieldURI does.
type propKey struct {
	tag   int    // PropertyTag, or -1 for a named property
	set   string // PropertySetId (lower-case GUID) or DistinguishedPropertySetId
	name  string // PropertyName
	id    int    // PropertyId, or -1
	ptype string // PropertyType
}

func (k propKey) String() string {
	if k.tag >= 0 {
		return fmt.Sprintf("0x%04X/%s", k.tag, k.ptype)
	}
	if k.name != "" {
		return fmt.Sprintf("{%s}/%s/%s", k.set, k.name, k.ptype)
	}
	return fmt.Sprintf("{%s}/%d/%s", k.set, k.id, k.ptype)
}

func tagKey(tag int, ptype string) propKey { return propKey{tag: tag, id: -1, ptype: ptype} }

// Property tags with meaning here ([MS-OXPROPS]).
const (
	tagMessageDeliveryTime = 0x0E06 // PidTagMessageDeliveryTime, SystemTime
	tagMessageFlags        = 0x0E07 // PidTagMessageFlags, Integer
	tagMessageSize         = 0x0E08 // PidTagMessageSize (Integer) / PR_MESSAGE_SIZE_EXTENDED (Long)
	tagFlagStatus          = 0x1090 // PidTagFlagStatus, Integer
	tagSubject             = 0x0037 // PidTagSubject, String
	tagMessageClass        = 0x001A // PidTagMessageClass, String
	tagInternetMessageID   = 0x1035 // PidTagInternetMessageId, String
	tagClientSubmitTime    = 0x0039 // PidTagClientSubmitTime, SystemTime
	tagDisplayName         = 0x3001 // PidTagDisplayName, String
	tagContainerClass      = 0x3613 // PidTagContainerClass, String
	tagContentCount        = 0x3602 // PidTagContentCount, Integer
	tagContentUnreadCount  = 0x3603 // PidTagContentUnreadCount, Integer
	tagSubfolders          = 0x360A // PidTagSubfolders, Boolean
	// Quota properties that Outlook reads from the store and that EWS
	// returns on the root folder (values in KiB): PR_QUOTA_WARNING,
	// PR_QUOTA_SEND, PR_QUOTA_RECEIVE and PR_MAX_SUBMIT_MESSAGE_SIZE. See
	// LIMITS.md for the sources and what is unconfirmed.
	tagQuotaWarning         = 0x341A
	tagQuotaSend            = 0x341B
	tagQuotaReceive         = 0x341C
	tagMaxSubmitMessageSize = 0x666D
)

// parseExtendedFieldURI checks the attribute combinations
// PathToExtendedFieldType allows: PropertyTag alone, or one of
// DistinguishedPropertySetId/PropertySetId with one of
// PropertyName/PropertyId; always with PropertyType. It returns the EWS
// response code for a bad combination.
func parseExtendedFieldURI(n *node) (propKey, string) {
	k := propKey{tag: -1, id: -1}
	k.ptype, _ = n.attr("PropertyType")
	tag, hasTag := n.attr("PropertyTag")
	dist, hasDist := n.attr("DistinguishedPropertySetId")
	set, hasSet := n.attr("PropertySetId")
	name, hasName := n.attr("PropertyName")
	id, hasID := n.attr("PropertyId")
	switch {
	case hasTag && !hasDist && !hasSet && !hasName && !hasID:
		v, err := parsePropertyTag(strings.TrimSpace(tag))
		if err != nil {
			return k, "ErrorInvalidExtendedProperty"
		}
		if v >= 0x8000 {
			// Named properties live in that range; they need a set and
			// a name or id ([MS-OXPROPS] 1.3.2, responsecode docs).
			return k, "ErrorNoPropertyTagForCustomProperties"
		}
		k.tag = int(v)
	case !hasTag && (hasDist != hasSet) && (hasName != hasID):
		if hasDist {
			k.set = dist
		} else {
			k.set = strings.ToLower(set)
		}
		if hasName {
			k.name = name
		} else {
			v, err := strconv.Atoi(strings.TrimSpace(id))
			if err != nil {
				return k, "ErrorInvalidExtendedProperty"
			}
			k.id = v
		}
	default:
		return k, "ErrorInvalidExtendedProperty"
	}
	return k, ""
}

// checkPropValue checks that a value fits the property type; a mismatch is
// ErrorInvalidExtendedPropertyValue. Only scalar types are accepted for
// writing; array types are refused as not implemented.
func checkPropValue(ptype, v string) (string, error) {
	v = strings.TrimSpace(v)
	var err error
	switch ptype {
	case "Integer":
		_, err = strconv.ParseInt(v, 10, 32)
	case "Long":
		_, err = strconv.ParseInt(v, 10, 64)
	case "Short":
		_, err = strconv.ParseInt(v, 10, 16)
	case "Boolean":
		err = xsBoolean(v)
	case "SystemTime":
		_, err = parseDateTime(v)
	case "Double", "Float":
		_, err = strconv.ParseFloat(v, 64)
	case "Binary":
		_, err = base64.StdEncoding.DecodeString(v)
	case "String", "CLSID", "Currency", "ApplicationTime":
	default:
		return "", &notImplError{what: "an extended property of type " + ptype}
	}
	if err != nil {
		return "ErrorInvalidExtendedPropertyValue", nil
	}
	return "", nil
}

// shape is a parsed FolderShape or ItemShape.
type shape struct {
	base   string
	mime   bool
	fields map[string]bool
	ext    []propKey
	// invalid is a requested property of the wrong kind (an item
	// property in a folder shape or the reverse): ErrorInvalidPropertyRequest.
	invalid string
}

// FieldURIs this server returns. Other values of UnindexedFieldURIType are
// refused as not implemented.
func itemFieldURI(uri string) bool {
	switch uri {
	case "item:ItemId", "item:ParentFolderId", "item:ItemClass", "item:Subject", "item:DateTimeReceived", "item:Size",
		"item:IsDraft", "item:DateTimeSent", "item:DateTimeCreated", "item:HasAttachments", "item:LastModifiedTime",
		"item:Flag", "item:MimeContent", "message:InternetMessageId", "message:IsRead":
		return true
	}
	return false
}

func folderFieldURI(uri string) bool {
	switch uri {
	case "folder:FolderId", "folder:ParentFolderId", "folder:DisplayName", "folder:FolderClass", "folder:TotalCount",
		"folder:ChildFolderCount", "folder:UnreadCount", "folder:DistinguishedFolderId":
		return true
	}
	return false
}

func parseShape(n *node, forFolders bool) (*shape, error) {
	sh := &shape{base: n.child(nsTypes, "BaseShape").value(), fields: map[string]bool{}}
	if sh.base == "PcxPeopleSearch" {
		return nil, &notImplError{what: "BaseShape PcxPeopleSearch"}
	}
	if m := n.child(nsTypes, "IncludeMimeContent"); m != nil {
		sh.mime = parseBool(m.value())
	}
	if ap := n.child(nsTypes, "AdditionalProperties"); ap != nil {
		for _, p := range ap.children {
			switch p.local {
			case "FieldURI":
				uri, _ := p.attr("FieldURI")
				own, other := itemFieldURI, folderFieldURI
				if forFolders {
					own, other = other, own
				}
				switch {
				case own(uri):
					sh.fields[uri] = true
				case other(uri) || (forFolders && !strings.HasPrefix(uri, "folder:")) || (!forFolders && strings.HasPrefix(uri, "folder:")):
					if sh.invalid == "" {
						sh.invalid = uri
					}
				default:
					return nil, &notImplError{what: "FieldURI " + uri}
				}
			case "ExtendedFieldURI":
				k, code := parseExtendedFieldURI(p)
				if code != "" {
					return nil, &itemError{code: code, text: extendedPropertyText(code)}
				}
				sh.ext = append(sh.ext, k)
			}
		}
	}
	return sh, nil
}

func extendedPropertyText(code string) string {
	switch code {
	case "ErrorNoPropertyTagForCustomProperties":
		return "Property tags in the custom range (0x8000 and up) cannot be referenced by tag; use PropertySetId with PropertyName or PropertyId."
	case "ErrorInvalidExtendedPropertyValue":
		return "The extended property value is invalid for its type."
	}
	return "The extended property attribute combination is invalid."
}

func (sh *shape) has(uri string, inDefault bool) bool {
	switch sh.base {
	case "AllProperties":
		return true
	case "Default":
		if inDefault {
			return true
		}
	}
	return sh.fields[uri]
}

// itemElement is the element an item is returned as, chosen by its class
// as Exchange does (ArrayOfRealItemsType).
func itemElement(class string) string {
	c := strings.ToUpper(class)
	switch {
	case strings.HasPrefix(c, "IPM.NOTE"), strings.HasPrefix(c, "REPORT."), c == "IPM":
		return "Message"
	case strings.HasPrefix(c, "IPM.SCHEDULE.MEETING.REQUEST"):
		return "MeetingRequest"
	case strings.HasPrefix(c, "IPM.SCHEDULE.MEETING.CANCELED"):
		return "MeetingCancellation"
	case strings.HasPrefix(c, "IPM.SCHEDULE.MEETING.RESP"):
		return "MeetingResponse"
	case strings.HasPrefix(c, "IPM.APPOINTMENT"):
		return "CalendarItem"
	case strings.HasPrefix(c, "IPM.CONTACT"):
		return "Contact"
	case strings.HasPrefix(c, "IPM.DISTLIST"):
		return "DistributionList"
	case strings.HasPrefix(c, "IPM.TASK"):
		return "Task"
	case strings.HasPrefix(c, "IPM.POST"):
		return "PostItem"
	}
	return "Item"
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// itemPropValue returns the value of an extended property on an item, and
// whether the item has it.
func itemPropValue(it *item, k propKey) (string, bool) {
	if k.tag >= 0 {
		switch {
		case k.tag == tagMessageFlags && k.ptype == "Integer":
			return strconv.Itoa(int(it.flags)), true
		case k.tag == tagMessageDeliveryTime && k.ptype == "SystemTime":
			return fmtTime(it.received), true
		case k.tag == tagMessageSize && k.ptype == "Integer":
			return strconv.Itoa(len(it.mime)), true
		case k.tag == tagMessageSize && k.ptype == "Long":
			return strconv.Itoa(len(it.mime)), true
		case k.tag == tagFlagStatus && k.ptype == "Integer":
			if it.flagStatus == flagStatusNone {
				return "", false
			}
			return strconv.Itoa(it.flagStatus), true
		case k.tag == tagMessageClass && k.ptype == "String":
			return it.class, true
		case k.tag == tagSubject && k.ptype == "String":
			if v, ok := it.ext[k]; ok {
				return v, true
			}
			return it.subject, it.subject != ""
		case k.tag == tagInternetMessageID && k.ptype == "String":
			return it.messageID, it.messageID != ""
		case k.tag == tagClientSubmitTime && k.ptype == "SystemTime":
			if v, ok := it.ext[k]; ok {
				return v, true
			}
			return fmtTime(it.sent), !it.sent.IsZero()
		}
	}
	v, ok := it.ext[k]
	return v, ok
}

// folderPropValue is itemPropValue for folders.
func folderPropValue(f *folder, k propKey) (string, bool) {
	if k.tag < 0 {
		return "", false
	}
	kib := func(b int64) (string, bool) {
		if b <= 0 {
			return "", false
		}
		return strconv.FormatInt((b+1023)/1024, 10), true
	}
	switch {
	case k.tag == tagMessageSize && (k.ptype == "Long" || k.ptype == "Integer"):
		return strconv.FormatInt(f.size(), 10), true
	case k.tag == tagDisplayName && k.ptype == "String":
		return f.name, true
	case k.tag == tagContainerClass && k.ptype == "String":
		return f.class, f.class != ""
	case k.tag == tagContentCount && k.ptype == "Integer":
		return strconv.Itoa(len(f.items)), true
	case k.tag == tagContentUnreadCount && k.ptype == "Integer":
		return strconv.Itoa(f.unread()), true
	case k.tag == tagSubfolders && k.ptype == "Boolean":
		return strconv.FormatBool(len(f.children) > 0), true
	case f == f.mbx.root && k.ptype == "Integer" && (k.tag == tagQuotaWarning || k.tag == tagQuotaSend || k.tag == tagQuotaReceive):
		return kib(f.mbx.quota)
	case f == f.mbx.root && k.ptype == "Integer" && k.tag == tagMaxSubmitMessageSize:
		return kib(f.mbx.maxMessage)
	}
	return "", false
}
