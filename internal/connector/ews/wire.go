package ews

// The SOAP subset this connector speaks, as encoding/xml types. Requests
// are written with the prefixes Microsoft's examples use (soap:, t:, m:)
// declared once on the envelope, and every struct lists its fields in
// the order of its xs:sequence in types.xsd/messages.xsd: Exchange
// validates requests against the schema and refuses elements out of
// order (ErrorSchemaValidation). Responses are read by local name, so a
// server that declares its prefixes differently is read the same.
//
// References (learn.microsoft.com/exchange/client-developer/…):
//   - [MS-OXWSCORE] Core Items Web Service Protocol (ItemType, GetItem,
//     CreateItem, UpdateItem, DeleteItem), [MS-OXWSFOLD] folders
//     (FindFolder, GetFolder, CreateFolder), [MS-OXWSSRCH] FindItem and
//     paging, [MS-OXWSSYNC] SyncFolderItems, [MS-OXWSMSG] MessageType,
//     [MS-OXWSXPROP] extended properties, [MS-OXWSCDATA] common types
//     (ResponseCode, FolderIdType, ExchangeImpersonation).
//   - web-service-reference/<operation>-operation pages for the examples
//     cited next to each type.

import (
	"encoding/xml"
	"strconv"
	"strings"
	"time"
)

// Namespaces ([MS-OXWSCDATA] 2.1, SOAP 1.1 §4.1.1).
const (
	nsSOAP     = "http://schemas.xmlsoap.org/soap/envelope/"
	nsTypes    = "http://schemas.microsoft.com/exchange/services/2006/types"
	nsMessages = "http://schemas.microsoft.com/exchange/services/2006/messages"
)

// requestVersion is sent in every request (web-service-reference/
// requestserverversion). Exchange2013_SP1 is the lowest version that has
// item:Flag and still covers Exchange 2013 SP1, 2016 and 2019; a server
// older than that answers ErrorInvalidServerVersion.
const requestVersion = "Exchange2013_SP1"

// envelope is a SOAP 1.1 request. Body holds one operation struct whose
// XMLName names the m: element.
type envelope struct {
	XMLName xml.Name `xml:"soap:Envelope"`
	NSSoap  string   `xml:"xmlns:soap,attr"`
	NSTypes string   `xml:"xmlns:t,attr"`
	NSMsgs  string   `xml:"xmlns:m,attr"`
	Header  header   `xml:"soap:Header"`
	Body    struct {
		Op any
	} `xml:"soap:Body"`
}

// header carries the SOAP headers EWS reads. Their order is free (SOAP
// 1.1 §4.2); each is a separate global element of types.xsd.
type header struct {
	// web-service-reference/requestserverversion
	Version struct {
		Version string `xml:"Version,attr"`
	} `xml:"t:RequestServerVersion"`
	// web-service-reference/exchangeimpersonation and
	// exchange-web-services/how-to-identify-the-account-to-impersonate:
	// ConnectingSID holds exactly one of PrimarySmtpAddress,
	// PrincipalName, SID or SmtpAddress.
	Impersonation *struct {
		SMTP string `xml:"t:ConnectingSID>t:PrimarySmtpAddress"`
	} `xml:"t:ExchangeImpersonation,omitempty"`
}

func newEnvelope(impersonate string, op any) *envelope {
	e := &envelope{NSSoap: nsSOAP, NSTypes: nsTypes, NSMsgs: nsMessages}
	e.Header.Version.Version = requestVersion
	if impersonate != "" {
		e.Header.Impersonation = &struct {
			SMTP string `xml:"t:ConnectingSID>t:PrimarySmtpAddress"`
		}{impersonate}
	}
	e.Body.Op = op
	return e
}

// folderRef is the FolderIdType / DistinguishedFolderIdType choice of
// every folder-id list ([MS-OXWSCDATA] NonEmptyArrayOfBaseFolderIdsType).
type folderRef struct {
	ID            string // FolderId Id
	Distinguished string // DistinguishedFolderId Id, e.g. "inbox"
}

func (f folderRef) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	if f.Distinguished != "" {
		return e.EncodeElement("", xml.StartElement{Name: xml.Name{Local: "t:DistinguishedFolderId"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "Id"}, Value: f.Distinguished}}})
	}
	return e.EncodeElement("", xml.StartElement{Name: xml.Name{Local: "t:FolderId"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "Id"}, Value: f.ID}}})
}

// itemRef is t:ItemId without ChangeKey: every write here uses
// ConflictResolution AlwaysOverwrite, which does not need one
// (web-service-reference/itemid).
type itemRef struct {
	ID string `xml:"Id,attr"`
}

// prop is one entry of AdditionalProperties or the path of an update:
// t:FieldURI (a typed property, web-service-reference/fielduri) or
// t:ExtendedFieldURI with PropertyTag and PropertyType
// ([MS-OXWSXPROP] 2.1.5, web-service-reference/extendedfielduri).
type prop struct {
	Field string // e.g. "item:Size"
	Tag   uint16 // MAPI property id when Field is empty
	Type  string // MapiPropertyTypeType, e.g. "Integer", "SystemTime", "String"
}

func (p prop) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	if p.Field != "" {
		return e.EncodeElement("", xml.StartElement{Name: xml.Name{Local: "t:FieldURI"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "FieldURI"}, Value: p.Field}}})
	}
	return e.EncodeElement("", xml.StartElement{Name: xml.Name{Local: "t:ExtendedFieldURI"},
		Attr: []xml.Attr{
			{Name: xml.Name{Local: "PropertyTag"}, Value: tagString(p.Tag)},
			{Name: xml.Name{Local: "PropertyType"}, Value: p.Type},
		}})
}

// tagString writes a property tag as Microsoft's examples do: 0x0E07.
func tagString(tag uint16) string {
	s := strings.ToUpper(strconv.FormatUint(uint64(tag), 16))
	return "0x" + strings.Repeat("0", 4-len(s)) + s
}

// MAPI properties read or written as extended properties.
var (
	// PR_MESSAGE_FLAGS, PidTagMessageFlags ([MS-OXCMSG] 2.2.1.6): 0x01
	// MSGFLAG_READ, 0x08 MSGFLAG_UNSENT (a draft). Settable only when
	// the item is created; exchange-web-services/how-to-import-items-by-
	// using-ews-in-exchange sets it "so that it doesn't appear in the
	// mailbox as a draft item".
	propMessageFlags = prop{Tag: 0x0E07, Type: "Integer"}
	// PR_MESSAGE_DELIVERY_TIME, PidTagMessageDeliveryTime ([MS-OXOMSG]
	// 2.2.3.9): the received date (IMAP INTERNALDATE).
	propDeliveryTime = prop{Tag: 0x0E06, Type: "SystemTime"}
	// PR_LAST_VERB_EXECUTED, PidTagLastVerbExecuted ([MS-OXOMSG]
	// 2.2.1.20): 102 replied to sender, 103 replied to all, 104
	// forwarded.
	propLastVerb = prop{Tag: 0x1081, Type: "Integer"}
	// PR_ICON_INDEX, PidTagIconIndex ([MS-OXOMSG] 2.2.1.10): the icon
	// Outlook shows; 0x105 replied, 0x106 forwarded.
	propIconIndex = prop{Tag: 0x1080, Type: "Integer"}
	// PR_TRANSPORT_MESSAGE_HEADERS, PidTagTransportMessageHeaders
	// ([MS-OXOMSG] 2.2.5.31): the message's Internet header block.
	propTransportHeaders = prop{Tag: 0x007D, Type: "String"}
	// PR_MESSAGE_SIZE_EXTENDED ([MS-OXPROPS] 2.797): a folder's total
	// size in bytes.
	propFolderSize = prop{Tag: 0x0E08, Type: "Long"}
	// Store quotas in KiB as Outlook caches them on the root folder:
	// PR_QUOTA_RECEIVE 0x341C (the "prohibit send and receive" limit)
	// and PR_MAX_SUBMIT_MESSAGE_SIZE 0x666D (Stephen Griffin, "Cached
	// Mode Quotas", MSDN blog 2012-04-17). Not confirmed for EWS on
	// Exchange 2016: their absence means "unknown".
	propQuotaReceive  = prop{Tag: 0x341C, Type: "Integer"}
	propMaxSubmitSize = prop{Tag: 0x666D, Type: "Integer"}
)

// Verb values of PR_LAST_VERB_EXECUTED and PR_ICON_INDEX.
const (
	verbReplyToSender = 102
	verbReplyToAll    = 103
	verbForward       = 104
	iconReplied       = 0x105
	iconForwarded     = 0x106
	msgflagRead       = 0x01
	msgflagUnsent     = 0x08
)

// shape is ItemResponseShapeType / FolderResponseShapeType
// ([MS-OXWSCDATA] 2.2.4.38, 2.2.4.35): BaseShape, then (items only)
// IncludeMimeContent, then AdditionalProperties.
type shape struct {
	Base        string    `xml:"t:BaseShape"`
	IncludeMIME *bool     `xml:"t:IncludeMimeContent,omitempty"`
	Additional  *propList `xml:"t:AdditionalProperties,omitempty"`
}

// propList is the content of AdditionalProperties.
type propList struct{ Props []prop }

func idOnly(props ...prop) shape {
	s := shape{Base: "IdOnly"}
	if len(props) > 0 {
		s.Additional = &propList{props}
	}
	return s
}

// listProps are what a listing asks for per item. FindItem and
// SyncFolderItems return only "first class" properties, so the header
// block is read separately with GetItem (see headers.go).
var listProps = []prop{
	{Field: "item:ItemClass"},
	{Field: "item:DateTimeReceived"},
	{Field: "item:Size"},
	{Field: "item:IsDraft"},
	{Field: "item:Flag"},
	{Field: "message:IsRead"},
	propLastVerb,
	propIconIndex,
}

// flagProps are what a flags-only refresh asks for.
var flagProps = []prop{
	{Field: "item:IsDraft"},
	{Field: "item:Flag"},
	{Field: "message:IsRead"},
	propLastVerb,
	propIconIndex,
}

// getFolderReq is GetFolder (web-service-reference/getfolder-operation;
// messages.xsd GetFolderType: FolderShape, FolderIds).
type getFolderReq struct {
	XMLName   xml.Name    `xml:"m:GetFolder"`
	Shape     shape       `xml:"m:FolderShape"`
	FolderIDs []folderRef `xml:"m:FolderIds>x"`
}

// findFolderReq is FindFolder Deep from msgfolderroot
// (web-service-reference/findfolder-operation; FindFolderType:
// FolderShape, IndexedPageFolderView, Restriction, ParentFolderIds).
type findFolderReq struct {
	XMLName   xml.Name    `xml:"m:FindFolder"`
	Traversal string      `xml:"Traversal,attr"`
	Shape     shape       `xml:"m:FolderShape"`
	View      pageView    `xml:"m:IndexedPageFolderView"`
	Parents   []folderRef `xml:"m:ParentFolderIds>x"`
}

// pageView is IndexedPageItemView / IndexedPageFolderView
// (exchange-web-services/how-to-perform-paged-searches-by-using-ews-in-exchange).
type pageView struct {
	Max       int    `xml:"MaxEntriesReturned,attr"`
	Offset    int    `xml:"Offset,attr"`
	BasePoint string `xml:"BasePoint,attr"`
}

// findItemReq is FindItem Shallow, sorted by received date so that mail
// arriving while the pages are read lands at the end instead of moving
// the offsets of what is still to read (web-service-reference/
// finditem-operation; FindItemType: ItemShape, view, GroupBy,
// Restriction, SortOrder, ParentFolderIds).
type findItemReq struct {
	XMLName   xml.Name    `xml:"m:FindItem"`
	Traversal string      `xml:"Traversal,attr"`
	Shape     shape       `xml:"m:ItemShape"`
	View      pageView    `xml:"m:IndexedPageItemView"`
	SortOrder *sortOrder  `xml:"m:SortOrder,omitempty"`
	Parents   []folderRef `xml:"m:ParentFolderIds>x"`
}

type sortOrder struct {
	Order struct {
		Order string `xml:"Order,attr"`
		Field prop
	} `xml:"t:FieldOrder"`
}

// syncFolderItemsReq is SyncFolderItems (web-service-reference/
// syncfolderitems-operation; SyncFolderItemsType: ItemShape,
// SyncFolderId, SyncState, Ignore, MaxChangesReturned, SyncScope). The
// SyncState is left out on the first call.
type syncFolderItemsReq struct {
	XMLName    xml.Name  `xml:"m:SyncFolderItems"`
	Shape      shape     `xml:"m:ItemShape"`
	Folder     folderRef `xml:"m:SyncFolderId>x"`
	SyncState  string    `xml:"m:SyncState,omitempty"`
	MaxChanges int       `xml:"m:MaxChangesReturned"`
}

// maxSyncChanges is the most changes one SyncFolderItems returns
// (web-service-reference/maxchangesreturned: 1 to 512).
const maxSyncChanges = 512

// getItemReq is GetItem (web-service-reference/getitem-operation-email-
// message; GetItemType: ItemShape, ItemIds).
type getItemReq struct {
	XMLName xml.Name  `xml:"m:GetItem"`
	Shape   shape     `xml:"m:ItemShape"`
	ItemIDs []itemRef `xml:"m:ItemIds>t:ItemId"`
}

// createFolderReq is CreateFolder (web-service-reference/
// createfolder-operation; CreateFolderType: ParentFolderId, Folders).
// The folder is a generic t:Folder with FolderClass IPF.Note, which
// BaseFolderType lists before DisplayName.
type createFolderReq struct {
	XMLName xml.Name  `xml:"m:CreateFolder"`
	Parent  folderRef `xml:"m:ParentFolderId>x"`
	Folders []struct {
		Class string `xml:"t:FolderClass"`
		Name  string `xml:"t:DisplayName"`
	} `xml:"m:Folders>t:Folder"`
}

// createItemReq is CreateItem with MessageDisposition SaveOnly, so that
// nothing is ever sent (web-service-reference/createitem-operation-email-
// message; CreateItemType: SavedItemFolderId, Items). Items are written
// by createItemBody, which streams MimeContent; this struct is only the
// frame around them.
type createItemReq struct {
	XMLName     xml.Name  `xml:"m:CreateItem"`
	Disposition string    `xml:"MessageDisposition,attr"`
	Folder      folderRef `xml:"m:SavedItemFolderId>x"`
	Items       string    `xml:"m:Items"`
}

// updateItemReq is UpdateItem (web-service-reference/updateitem-
// operation; UpdateItemType attributes ConflictResolution,
// MessageDisposition; elements SavedItemFolderId, ItemChanges).
type updateItemReq struct {
	XMLName     xml.Name     `xml:"m:UpdateItem"`
	Conflict    string       `xml:"ConflictResolution,attr"`
	Disposition string       `xml:"MessageDisposition,attr"`
	Changes     []itemChange `xml:"m:ItemChanges>t:ItemChange"`
}

// itemChange is ItemChangeType: ItemId, then Updates.
type itemChange struct {
	Item    itemRef  `xml:"t:ItemId"`
	Updates []update `xml:"t:Updates>x"`
}

// update is one SetItemField (path, then an item holding the value) or
// DeleteItemField (path only) (web-service-reference/setitemfield,
// deleteitemfield).
type update struct {
	Delete bool
	Path   prop
	// Value is the t:Message written after the path of a SetItemField.
	Value *messageValue
}

func (u update) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	name := "t:SetItemField"
	if u.Delete {
		name = "t:DeleteItemField"
	}
	start := xml.StartElement{Name: xml.Name{Local: name}}
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	if err := e.Encode(u.Path); err != nil {
		return err
	}
	if !u.Delete && u.Value != nil {
		if err := e.Encode(u.Value); err != nil {
			return err
		}
	}
	return e.EncodeToken(start.End())
}

// messageValue is the t:Message of a SetItemField, holding the one
// property being set, in MessageType order: ExtendedProperty, Flag
// (ItemType), then IsRead (MessageType).
type messageValue struct {
	XMLName  xml.Name    `xml:"t:Message"`
	Extended *extPropOut `xml:"t:ExtendedProperty,omitempty"`
	Flag     *flagOut    `xml:"t:Flag,omitempty"`
	IsRead   *bool       `xml:"t:IsRead,omitempty"`
}

// extPropOut is ExtendedPropertyType for writing: the path, then one
// Value ([MS-OXWSXPROP] 2.1.7).
type extPropOut struct {
	Path  prop
	Value string `xml:"t:Value"`
}

// flagOut is FlagType (web-service-reference/flag): FlagStatus, then
// the optional dates, which are left out.
type flagOut struct {
	Status string `xml:"t:FlagStatus"`
}

// deleteItemReq is DeleteItem (web-service-reference/deleteitem-
// operation). SoftDelete moves the items to the Recoverable Items
// folder, where an administrator can still restore them.
type deleteItemReq struct {
	XMLName    xml.Name  `xml:"m:DeleteItem"`
	DeleteType string    `xml:"DeleteType,attr"`
	ItemIDs    []itemRef `xml:"m:ItemIds>t:ItemId"`
}

// --- responses ---

// respStatus is the part of ResponseMessageType every response message
// has ([MS-OXWSCDATA] 2.2.4.67): ResponseClass, MessageText,
// ResponseCode, DescriptiveLinkKey, MessageXml.
type respStatus struct {
	Class      string     `xml:"ResponseClass,attr"`
	Text       string     `xml:"MessageText"`
	Code       string     `xml:"ResponseCode"`
	MessageXML messageXML `xml:"MessageXml"`
}

// messageXML holds the named values some errors carry, e.g.
// BackOffMilliseconds on ErrorServerBusy (exchange-web-services/
// ews-throttling-in-exchange, table 4).
type messageXML struct {
	// Violation says what a schema validation error found.
	Violation string `xml:"Violation"`
	Values    []struct {
		Name  string `xml:"Name,attr"`
		Value string `xml:",chardata"`
	} `xml:"Value"`
}

func (m messageXML) backOff() time.Duration {
	for _, v := range m.Values {
		if v.Name == "BackOffMilliseconds" {
			if n, err := strconv.ParseInt(strings.TrimSpace(v.Value), 10, 64); err == nil && n > 0 {
				return time.Duration(n) * time.Millisecond
			}
		}
	}
	return 0
}

// ok: Success, or a Warning that is not an error (NoError).
func (s respStatus) ok() bool { return s.Class == "Success" || s.Code == "NoError" }

// soapFault is a SOAP 1.1 Fault (§4.4) as EWS sends it for request-level
// errors (ErrorServerBusy, ErrorSchemaValidation, …): faultcode
// "a:ErrorServerBusy", and in detail e:ResponseCode, e:Message and
// t:MessageXml.
type soapFault struct {
	Code   string `xml:"faultcode"`
	String string `xml:"faultstring"`
	Detail struct {
		ResponseCode string     `xml:"ResponseCode"`
		Message      string     `xml:"Message"`
		MessageXML   messageXML `xml:"MessageXml"`
	} `xml:"detail"`
}

// folderXML is any folder element (Folder, CalendarFolder,
// ContactsFolder, TasksFolder, SearchFolder) as returned.
type folderXML struct {
	XMLName xml.Name
	ID      struct {
		ID string `xml:"Id,attr"`
	} `xml:"FolderId"`
	Parent struct {
		ID string `xml:"Id,attr"`
	} `xml:"ParentFolderId"`
	Class       string       `xml:"FolderClass"`
	DisplayName string       `xml:"DisplayName"`
	TotalCount  *int64       `xml:"TotalCount"`
	ChildCount  *int64       `xml:"ChildFolderCount"`
	Extended    []extPropXML `xml:"ExtendedProperty"`
}

type foldersXML struct {
	Folders []folderXML `xml:",any"`
}

// extPropXML is a returned ExtendedProperty: ExtendedFieldURI, then
// Value (or Values, for multi-valued properties, which are not used).
type extPropXML struct {
	Path struct {
		Tag  string `xml:"PropertyTag,attr"`
		Type string `xml:"PropertyType,attr"`
	} `xml:"ExtendedFieldURI"`
	Value string `xml:"Value"`
}

// tag parses PropertyTag as a number: servers print it as "0x0E07",
// "0xe07" or in decimal (web-service-reference/extendedfielduri allows
// either).
func (x extPropXML) tag() (uint16, bool) {
	s := strings.TrimSpace(x.Path.Tag)
	base := 10
	if len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X") {
		s, base = s[2:], 16
	}
	n, err := strconv.ParseUint(s, base, 16)
	return uint16(n), err == nil
}

func findExt(xs []extPropXML, tag uint16) (string, bool) {
	for _, x := range xs {
		if t, ok := x.tag(); ok && t == tag {
			return x.Value, true
		}
	}
	return "", false
}

func findExtInt(xs []extPropXML, tag uint16) (int64, bool) {
	v, ok := findExt(xs, tag)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	return n, err == nil
}

// itemXML is any item element (Message, MeetingRequest, PostItem, Item,
// …) as returned. MimeContent is only ever the index splice.go put in
// place of the body.
type itemXML struct {
	XMLName xml.Name
	MIME    *struct {
		Text string `xml:",chardata"`
	} `xml:"MimeContent"`
	ID struct {
		ID string `xml:"Id,attr"`
	} `xml:"ItemId"`
	Class    string       `xml:"ItemClass"`
	Received string       `xml:"DateTimeReceived"`
	Size     *int64       `xml:"Size"`
	IsDraft  *bool        `xml:"IsDraft"`
	Extended []extPropXML `xml:"ExtendedProperty"`
	Flag     *struct {
		Status string `xml:"FlagStatus"`
	} `xml:"Flag"`
	IsRead *bool `xml:"IsRead"`
}

type itemsXML struct {
	Items []itemXML `xml:",any"`
}

type getFolderResp struct {
	Messages []struct {
		respStatus
		Folders foldersXML `xml:"Folders"`
	} `xml:"ResponseMessages>GetFolderResponseMessage"`
}

type findFolderResp struct {
	Messages []struct {
		respStatus
		Root struct {
			Offset  int        `xml:"IndexedPagingOffset,attr"`
			Total   int        `xml:"TotalItemsInView,attr"`
			Last    bool       `xml:"IncludesLastItemInRange,attr"`
			Folders foldersXML `xml:"Folders"`
		} `xml:"RootFolder"`
	} `xml:"ResponseMessages>FindFolderResponseMessage"`
}

type createFolderResp struct {
	Messages []struct {
		respStatus
		Folders foldersXML `xml:"Folders"`
	} `xml:"ResponseMessages>CreateFolderResponseMessage"`
}

type findItemResp struct {
	Messages []struct {
		respStatus
		Root struct {
			Offset int      `xml:"IndexedPagingOffset,attr"`
			Total  int      `xml:"TotalItemsInView,attr"`
			Last   bool     `xml:"IncludesLastItemInRange,attr"`
			Items  itemsXML `xml:"Items"`
		} `xml:"RootFolder"`
	} `xml:"ResponseMessages>FindItemResponseMessage"`
}

// syncChange is one child of Changes: Create and Update hold an item,
// Delete an ItemId, ReadFlagChange an ItemId and IsRead
// (web-service-reference/changes-items).
type syncChange struct {
	XMLName xml.Name
	ItemID  *struct {
		ID string `xml:"Id,attr"`
	} `xml:"ItemId"`
	IsRead *bool     `xml:"IsRead"`
	Items  []itemXML `xml:",any"`
}

type syncFolderItemsResp struct {
	Messages []struct {
		respStatus
		SyncState string `xml:"SyncState"`
		Last      bool   `xml:"IncludesLastItemInRange"`
		Changes   struct {
			Changes []syncChange `xml:",any"`
		} `xml:"Changes"`
	} `xml:"ResponseMessages>SyncFolderItemsResponseMessage"`
}

type itemsRespMsg struct {
	respStatus
	Items itemsXML `xml:"Items"`
}

type getItemResp struct {
	Messages []itemsRespMsg `xml:"ResponseMessages>GetItemResponseMessage"`
}

type createItemResp struct {
	Messages []itemsRespMsg `xml:"ResponseMessages>CreateItemResponseMessage"`
}

type updateItemResp struct {
	Messages []itemsRespMsg `xml:"ResponseMessages>UpdateItemResponseMessage"`
}

type deleteItemResp struct {
	Messages []respStatus `xml:"ResponseMessages>DeleteItemResponseMessage"`
}

// ewsTime formats a time as xs:dateTime in UTC.
func ewsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// parseEWSTime reads an xs:dateTime as EWS returns it (UTC, "Z").
func parseEWSTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		// xs:dateTime without a zone: EWS means UTC.
		t, err = time.Parse("2006-01-02T15:04:05.999999999", s)
		if err != nil {
			return time.Time{}, false
		}
		t = t.UTC()
	}
	return t, true
}
