package ewsserver

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// schema holds the content models this server validates requests against.
// It is built per Server (buildSchema) so that no package-level mutable
// state exists; building it takes microseconds.
type schema struct {
	header   map[string]*elem // t: header elements by local name
	ops      map[string]*elem // m: operation elements by local name
	knownOps map[string]bool  // every operation messages.xsd declares
}

// exchangeVersions is ExchangeVersionType of types.xsd.
const exchangeVersions = `Exchange2007 Exchange2007_SP1 Exchange2009 Exchange2010 Exchange2010_SP1 Exchange2010_SP2 Exchange2012 Exchange2013 Exchange2013_SP1 Exchange2015 Exchange2016 V2015_10_05 V2016_01_06 V2016_04_13 V2016_07_13 V2016_10_10 V2017_01_07 V2017_04_14 V2017_07_11 V2017_10_09 V2018_01_08`

// distinguishedFolderIDs are the DistinguishedFolderId Id values that
// learn.microsoft.com lists for Exchange 2013 SP1 through 2019
// (web-service-reference/distinguishedfolderid). Later schemas add more
// (notably "archive", which on-premises Exchange does not have); those
// fail validation here as they would on Exchange 2016.
const distinguishedFolderIDs = `calendar contacts deleteditems drafts inbox journal notes outbox sentitems tasks msgfolderroot publicfoldersroot root junkemail searchfolders voicemail recoverableitemsroot recoverableitemsdeletions recoverableitemsversions recoverableitemspurges archiveroot archivemsgfolderroot archivedeleteditems archiveinbox archiverecoverableitemsroot archiverecoverableitemsdeletions archiverecoverableitemsversions archiverecoverableitemspurges syncissues conflicts localfailures serverfailures recipientcache quickcontacts conversationhistory adminauditlogs todosearch mycontacts directory imcontactlist peopleconnect favorites`

// MapiPropertyTypeType of types.xsd.
const mapiPropertyTypes = `ApplicationTime ApplicationTimeArray Binary BinaryArray Boolean CLSID CLSIDArray Currency CurrencyArray Double DoubleArray Error Float FloatArray Integer IntegerArray Long LongArray Null Object ObjectArray Short ShortArray SystemTime SystemTimeArray String StringArray`

// Operation elements that messages.xsd declares. Those this server does not
// implement are refused as not implemented; an element not in this list is
// not an EWS operation and fails schema validation.
const declaredOperations = `GetFolder UploadItems ExportItems CreateFolder FindFolder DeleteFolder
	EmptyFolder MoveFolder CopyFolder UpdateFolder CreateFolderPath GetItem CreateItem UpdateItem
	UpdateItemInRecoverableItems DeleteItem MoveItem CopyItem ArchiveItem SendItem FindItem
	FindConversation PerformInstantSearch EndInstantSearchSession ApplyConversationAction FindPeople
	FindTags AddTag HideTag GetPersona CreateAttachment DeleteAttachment GetAttachment
	GetClientAccessToken ResolveNames GetPasswordExpirationDate GetMailTips PlayOnPhone
	GetPhoneCallInformation DisconnectPhoneCall ExpandDL GetServerTimeZones CreateManagedFolder
	Subscribe Unsubscribe GetEvents GetStreamingEvents SendNotification SyncFolderHierarchy
	SyncFolderItems GetUserAvailabilityRequest GetUserOofSettingsRequest SetUserOofSettingsRequest
	ConvertId GetDelegate AddDelegate RemoveDelegate UpdateDelegate GetSharingMetadata
	RefreshSharingFolder GetSharingFolder CreateUserConfiguration DeleteUserConfiguration
	GetUserConfiguration UpdateUserConfiguration GetRoomLists GetRooms GetReminders
	PerformReminderAction GetServiceConfiguration FindMessageTrackingReport GetMessageTrackingReport
	GetInboxRules UpdateInboxRules FindMailboxStatisticsByKeywords GetSearchableMailboxes
	SearchMailboxes GetDiscoverySearchConfiguration GetHoldOnMailboxes SetHoldOnMailboxes
	GetNonIndexableItemStatistics GetNonIndexableItemDetails MarkAllItemsAsRead GetConversationItems
	GetAppManifests GetAppMarketplaceUrl MarkAsJunk InstallApp UninstallApp DisableApp
	GetUserRetentionPolicyTags GetUserPhoto SetUserPhoto`

// propertyTag checks PropertyTagType: "0x" and one to four hex digits, or
// an xs:unsignedShort.
func propertyTag(s string) error {
	if _, err := parsePropertyTag(s); err != nil {
		return fmt.Errorf("the value is not a valid PropertyTagType (0x0000-0xFFFF or 0-65535)")
	}
	return nil
}

func parsePropertyTag(s string) (uint16, error) {
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		h := s[2:]
		if len(h) < 1 || len(h) > 4 {
			return 0, fmt.Errorf("bad tag")
		}
		v, err := strconv.ParseUint(h, 16, 16)
		return uint16(v), err
	}
	v, err := strconv.ParseUint(s, 10, 16)
	return uint16(v), err
}

func buildSchema() *schema {
	guidPattern := regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)
	soapAttrs := nsSOAP
	str := func(name string) *ctype { return textType(name, xsString) }
	boolT := textType("xs:boolean", xsBoolean)
	dateT := textType("xs:dateTime", xsDateTime)
	nonEmptyT := textType("t:NonEmptyStringType", nonEmpty)

	// --- Identifiers (types.xsd: FolderIdType, DistinguishedFolderIdType,
	// EmailAddressType, ItemIdType).
	folderID := &ctype{name: "t:FolderIdType", attrs: []attrDecl{{"Id", true, nil}, {"ChangeKey", false, nil}}}
	itemID := &ctype{name: "t:ItemIdType", attrs: []attrDecl{{"Id", true, nil}, {"ChangeKey", false, nil}}}
	emailAddress := &ctype{name: "t:EmailAddressType", seq: seq(
		opt(tEl("Name", str("xs:string"))),
		opt(tEl("EmailAddress", nonEmptyT)),
		opt(tEl("RoutingType", nonEmptyT)),
		opt(tEl("MailboxType", textType("t:MailboxTypeType", enum("Unknown", "OneOff", "Mailbox", "PublicDL", "PrivateDL", "Contact", "PublicFolder", "GroupMailbox", "ImplicitContact", "User")))),
		optAll(ni(nsTypes, "ItemId", "OriginalDisplayName")),
	)}
	distFolderID := &ctype{name: "t:DistinguishedFolderIdType",
		seq:   seq(opt(tEl("Mailbox", emailAddress))),
		attrs: []attrDecl{{"Id", true, enum(strings.Fields(distinguishedFolderIDs)...)}, {"ChangeKey", false, nil}}}
	// NonEmptyArrayOfBaseFolderIdsType and TargetFolderIdType.
	folderIDs := &ctype{name: "t:NonEmptyArrayOfBaseFolderIdsType", seq: seq(
		choice(1, unbounded, tEl("FolderId", folderID), tEl("DistinguishedFolderId", distFolderID)))}
	targetFolderID := &ctype{name: "t:TargetFolderIdType", seq: seq(
		choice(1, 1, tEl("FolderId", folderID), tEl("DistinguishedFolderId", distFolderID), ni(nsTypes, "AddressListId")[0]))}
	// NonEmptyArrayOfBaseItemIdsType.
	itemIDs := &ctype{name: "t:NonEmptyArrayOfBaseItemIdsType", seq: seq(
		choice(1, unbounded, append([]*elem{tEl("ItemId", itemID)}, ni(nsTypes, "OccurrenceItemId", "RecurringMasterItemId", "RecurringMasterItemIdRanges")...)...))}

	// --- Property paths (t:Path substitution group: FieldURI,
	// IndexedFieldURI, ExtendedFieldURI; PathToUnindexedFieldType,
	// PathToExtendedFieldType).
	fieldURI := &ctype{name: "t:PathToUnindexedFieldType", attrs: []attrDecl{{"FieldURI", true, enum(strings.Fields(unindexedFieldURIs)...)}}}
	extendedFieldURI := &ctype{name: "t:PathToExtendedFieldType", attrs: []attrDecl{
		{"DistinguishedPropertySetId", false, enum("Meeting", "Appointment", "Common", "PublicStrings", "Address", "InternetHeaders", "CalendarAssistant", "UnifiedMessaging", "Task", "Sharing")},
		{"PropertySetId", false, func(s string) error {
			if !guidPattern.MatchString(s) {
				return fmt.Errorf("the Pattern constraint failed")
			}
			return nil
		}},
		{"PropertyTag", false, propertyTag},
		{"PropertyName", false, nil},
		{"PropertyId", false, xsInt},
		{"PropertyType", true, enum(strings.Fields(mapiPropertyTypes)...)},
	}}
	pathChoice := func() particle {
		return choice(1, 1, tEl("FieldURI", fieldURI), ni(nsTypes, "IndexedFieldURI")[0], tEl("ExtendedFieldURI", extendedFieldURI))
	}
	paths := &ctype{name: "t:NonEmptyArrayOfPathsToElementType", seq: seq(
		choice(1, unbounded, tEl("FieldURI", fieldURI), ni(nsTypes, "IndexedFieldURI")[0], tEl("ExtendedFieldURI", extendedFieldURI)))}

	// --- Shapes (FolderResponseShapeType, ItemResponseShapeType).
	baseShape := textType("t:DefaultShapeNamesType", enum("IdOnly", "Default", "AllProperties", "PcxPeopleSearch"))
	folderShape := &ctype{name: "t:FolderResponseShapeType", seq: seq(
		one(tEl("BaseShape", baseShape)),
		opt(tEl("AdditionalProperties", paths)))}
	itemShape := &ctype{name: "t:ItemResponseShapeType", seq: seq(
		one(tEl("BaseShape", baseShape)),
		opt(tEl("IncludeMimeContent", boolT)),
		optAll(ni(nsTypes, "BodyType", "UniqueBodyType", "NormalizedBodyType", "FilterHtmlContent", "ConvertHtmlCodePageToUTF8", "InlineImageUrlTemplate", "BlockExternalImages", "AddBlankTargetToLinks", "MaximumBodySize")),
		opt(tEl("AdditionalProperties", paths)))}

	// --- Paging (IndexedPageViewType extends BasePagingType).
	indexedView := &ctype{name: "t:IndexedPageViewType", attrs: []attrDecl{
		{"MaxEntriesReturned", false, xsInt},
		{"Offset", true, xsInt},
		{"BasePoint", true, enum("Beginning", "End")}}}

	// --- Extended properties and flags (ExtendedPropertyType,
	// NonEmptyArrayOfPropertyValuesType, FlagType).
	valuesT := &ctype{name: "t:NonEmptyArrayOfPropertyValuesType", seq: seq(many(tEl("Value", str("xs:string")), 1))}
	extendedProperty := &ctype{name: "t:ExtendedPropertyType", seq: seq(
		one(tEl("ExtendedFieldURI", extendedFieldURI)),
		choice(1, 1, tEl("Value", str("xs:string")), tEl("Values", valuesT)))}
	flag := &ctype{name: "t:FlagType", seq: seq(
		one(tEl("FlagStatus", textType("t:FlagStatusType", enum("NotFlagged", "Flagged", "Complete")))),
		opt(tEl("StartDate", dateT)),
		opt(tEl("DueDate", dateT)),
		opt(tEl("CompleteDate", dateT)))}
	mimeContent := textType("t:MimeContentType", xsString, attrDecl{"CharacterSet", false, nil})

	// --- Items. ItemType's sequence, in types.xsd order; then
	// MessageType's extension. Implemented: MimeContent, ItemClass,
	// ExtendedProperty, Flag, IsRead. Everything else is declared so that
	// its position in the sequence is checked, and refused as not
	// implemented if present.
	itemSeq := func() []particle {
		return seq(
			opt(tEl("MimeContent", mimeContent)),
			optAll(ni(nsTypes, "ItemId", "ParentFolderId")),
			opt(tEl("ItemClass", str("t:ItemClassType"))),
			optAll(ni(nsTypes, "Subject", "Sensitivity", "Body", "Attachments", "DateTimeReceived", "Size", "Categories", "Importance", "InReplyTo", "IsSubmitted", "IsDraft", "IsFromMe", "IsResend", "IsUnmodified", "InternetMessageHeaders", "DateTimeSent", "DateTimeCreated", "ResponseObjects", "ReminderDueBy", "ReminderIsSet", "ReminderNextTime", "ReminderMinutesBeforeStart", "DisplayCc", "DisplayTo", "DisplayBcc", "HasAttachments")),
			many(tEl("ExtendedProperty", extendedProperty), 0),
			optAll(ni(nsTypes, "Culture", "EffectiveRights", "LastModifiedName", "LastModifiedTime", "IsAssociated", "WebClientReadFormQueryString", "WebClientEditFormQueryString", "ConversationId", "UniqueBody")),
			opt(tEl("Flag", flag)),
			optAll(ni(nsTypes, "StoreEntryId", "InstanceKey", "NormalizedBody", "EntityExtractionResult", "PolicyTag", "ArchiveTag", "RetentionDate", "Preview", "RightsManagementLicenseData", "PredictedActionReasons", "IsClutter", "BlockStatus", "HasBlockedImages", "TextBody", "IconIndex", "SearchKey", "SortKey", "Hashtags", "Mentions", "MentionedMe", "MentionsPreview", "MentionsEx", "AppliedHashtags", "AppliedHashtagsPreview", "Likes", "LikesPreview", "PendingSocialActivityTagIds", "AtAllMention", "CanDelete", "InferenceClassification")),
		)
	}
	itemT := &ctype{name: "t:ItemType", seq: itemSeq()}
	messageT := &ctype{name: "t:MessageType", seq: seq(itemSeq(),
		optAll(ni(nsTypes, "Sender", "ToRecipients", "CcRecipients", "BccRecipients", "IsReadReceiptRequested", "IsDeliveryReceiptRequested", "ConversationIndex", "ConversationTopic", "From", "InternetMessageId")),
		opt(tEl("IsRead", boolT)),
		optAll(ni(nsTypes, "IsResponseRequested", "References", "ReplyTo", "ReceivedBy", "ReceivedRepresenting", "ApprovalRequestData", "VotingInformation", "ReminderMessageData", "MessageSafety", "SenderSMTPAddress", "MailboxGuids", "PublishedCalendarItemIcs", "PublishedCalendarItemName")),
	)}
	otherItems := func(extra ...string) []*elem {
		return ni(nsTypes, append([]string{"SharingMessage", "CalendarItem", "Contact", "DistributionList", "MeetingMessage", "MeetingRequest", "MeetingResponse", "MeetingCancellation", "Task", "PostItem"}, extra...)...)
	}
	// NonEmptyArrayOfAllItemsType (CreateItem/Items).
	allItems := &ctype{name: "t:NonEmptyArrayOfAllItemsType", seq: seq(
		choice(1, unbounded, append([]*elem{tEl("Item", itemT), tEl("Message", messageT)},
			otherItems("ReplyToItem", "ForwardItem", "ReplyAllToItem", "AcceptItem", "TentativelyAcceptItem", "DeclineItem", "CancelCalendarItem", "RemoveItem", "SuppressReadReceipt", "PostReplyItem", "AcceptSharingInvitation", "RoleMember", "Network", "Person")...)...))}

	// --- Item changes (ItemChangeType, NonEmptyArrayOfItemChangesType,
	// NonEmptyArrayOfItemChangeDescriptionsType, SetItemFieldType,
	// DeleteItemFieldType; ChangeDescriptionType puts t:Path first).
	setItemField := &ctype{name: "t:SetItemFieldType", seq: seq(pathChoice(),
		choice(1, 1, append([]*elem{tEl("Item", itemT), tEl("Message", messageT)}, otherItems("RoleMember", "Network", "Person")...)...))}
	deleteItemField := &ctype{name: "t:DeleteItemFieldType", seq: seq(pathChoice())}
	updates := &ctype{name: "t:NonEmptyArrayOfItemChangeDescriptionsType", seq: seq(
		choice(1, unbounded, ni(nsTypes, "AppendToItemField")[0], tEl("SetItemField", setItemField), tEl("DeleteItemField", deleteItemField)))}
	itemChange := &ctype{name: "t:ItemChangeType", seq: seq(
		choice(1, 1, append([]*elem{tEl("ItemId", itemID)}, ni(nsTypes, "OccurrenceItemId", "RecurringMasterItemId")...)...),
		one(tEl("Updates", updates)),
		optAll(ni(nsTypes, "CalendarActivityData")))}
	itemChanges := &ctype{name: "t:NonEmptyArrayOfItemChangesType", seq: seq(many(tEl("ItemChange", itemChange), 1))}

	// --- Folders for CreateFolder (BaseFolderType and its extensions
	// FolderType, CalendarFolderType, ContactsFolderType, TasksFolderType).
	baseFolderSeq := func() []particle {
		return seq(
			optAll(ni(nsTypes, "FolderId", "ParentFolderId")),
			opt(tEl("FolderClass", str("xs:string"))),
			opt(tEl("DisplayName", str("xs:string"))),
			optAll(ni(nsTypes, "TotalCount", "ChildFolderCount")),
			many(ni(nsTypes, "ExtendedProperty")[0], 0),
			optAll(ni(nsTypes, "ManagedFolderInformation", "EffectiveRights", "DistinguishedFolderId", "PolicyTag", "ArchiveTag", "ReplicaList")),
		)
	}
	folderT := &ctype{name: "t:FolderType", seq: seq(baseFolderSeq(), optAll(ni(nsTypes, "PermissionSet", "UnreadCount")))}
	calendarFolderT := &ctype{name: "t:CalendarFolderType", seq: seq(baseFolderSeq(), optAll(ni(nsTypes, "SharingEffectiveRights", "PermissionSet")))}
	contactsFolderT := &ctype{name: "t:ContactsFolderType", seq: seq(baseFolderSeq(), optAll(ni(nsTypes, "SharingEffectiveRights", "PermissionSet", "SourceId", "AccountName")))}
	tasksFolderT := &ctype{name: "t:TasksFolderType", seq: seq(baseFolderSeq(), optAll(ni(nsTypes, "PermissionSet", "UnreadCount")))}
	folders := &ctype{name: "t:NonEmptyArrayOfFoldersType", seq: seq(choice(1, unbounded,
		tEl("Folder", folderT), tEl("CalendarFolder", calendarFolderT), tEl("ContactsFolder", contactsFolderT),
		ni(nsTypes, "SearchFolder")[0], tEl("TasksFolder", tasksFolderT)))}

	// --- Sort order (NonEmptyArrayOfFieldOrdersType, FieldOrderType).
	fieldOrder := &ctype{name: "t:FieldOrderType", seq: seq(pathChoice()), attrs: []attrDecl{{"Order", true, enum("Ascending", "Descending")}}}
	sortOrder := &ctype{name: "t:NonEmptyArrayOfFieldOrdersType", seq: seq(many(tEl("FieldOrder", fieldOrder), 1))}

	// --- Operations (messages.xsd). BaseRequestType declares nothing.
	sendInv := enum("SendToNone", "SendOnlyToAll", "SendToAllAndSaveCopy")
	disposition := enum("SaveOnly", "SendOnly", "SendAndSaveCopy")
	ops := map[string]*ctype{
		// FindFolderType
		"FindFolder": {name: "m:FindFolderType", seq: seq(
			one(mEl("FolderShape", folderShape)),
			choice(0, 1, mEl("IndexedPageFolderView", indexedView), ni(nsMessages, "FractionalPageFolderView")[0]),
			optAll(ni(nsMessages, "Restriction")),
			one(mEl("ParentFolderIds", folderIDs))),
			attrs: []attrDecl{{"Traversal", true, enum("Shallow", "Deep", "SoftDeleted")}}},
		// GetFolderType
		"GetFolder": {name: "m:GetFolderType", seq: seq(
			one(mEl("FolderShape", folderShape)),
			one(mEl("FolderIds", folderIDs)))},
		// CreateFolderType
		"CreateFolder": {name: "m:CreateFolderType", seq: seq(
			one(mEl("ParentFolderId", targetFolderID)),
			one(mEl("Folders", folders)))},
		// FindItemType
		"FindItem": {name: "m:FindItemType", seq: seq(
			one(mEl("ItemShape", itemShape)),
			choice(0, 1, append([]*elem{mEl("IndexedPageItemView", indexedView)}, ni(nsMessages, "FractionalPageItemView", "SeekToConditionPageItemView", "CalendarView", "ContactsView")...)...),
			choice(0, 1, ni(nsMessages, "GroupBy", "DistinguishedGroupBy")...),
			optAll(ni(nsMessages, "Restriction")),
			opt(mEl("SortOrder", sortOrder)),
			one(mEl("ParentFolderIds", folderIDs)),
			optAll(ni(nsMessages, "QueryString"))),
			attrs: []attrDecl{{"Traversal", true, enum("Shallow", "SoftDeleted", "Associated")}}},
		// GetItemType
		"GetItem": {name: "m:GetItemType", seq: seq(
			one(mEl("ItemShape", itemShape)),
			one(mEl("ItemIds", itemIDs)))},
		// CreateItemType
		"CreateItem": {name: "m:CreateItemType", seq: seq(
			opt(mEl("SavedItemFolderId", targetFolderID)),
			one(mEl("Items", allItems))),
			attrs: []attrDecl{{"MessageDisposition", false, disposition}, {"SendMeetingInvitations", false, sendInv}}},
		// UpdateItemType
		"UpdateItem": {name: "m:UpdateItemType", seq: seq(
			opt(mEl("SavedItemFolderId", targetFolderID)),
			one(mEl("ItemChanges", itemChanges))),
			attrs: []attrDecl{
				{"ConflictResolution", true, enum("NeverOverwrite", "AutoResolve", "AlwaysOverwrite")},
				{"MessageDisposition", false, disposition},
				{"SendMeetingInvitationsOrCancellations", false, enum("SendToNone", "SendOnlyToAll", "SendOnlyToChanged", "SendToAllAndSaveCopy", "SendToChangedAndSaveCopy")},
				{"SuppressReadReceipts", false, xsBoolean}}},
		// DeleteItemType
		"DeleteItem": {name: "m:DeleteItemType", seq: seq(one(mEl("ItemIds", itemIDs))),
			attrs: []attrDecl{
				{"DeleteType", true, enum("HardDelete", "SoftDelete", "MoveToDeletedItems")},
				{"SendMeetingCancellations", false, sendInv},
				{"AffectedTaskOccurrences", false, enum("AllOccurrences", "SpecifiedOccurrenceOnly")},
				{"SuppressReadReceipts", false, xsBoolean}}},
		// SyncFolderItemsType; MaxChangesReturned is
		// MaxSyncChangesReturnedType (xs:int 1..512).
		"SyncFolderItems": {name: "m:SyncFolderItemsType", seq: seq(
			one(mEl("ItemShape", itemShape)),
			one(mEl("SyncFolderId", targetFolderID)),
			opt(mEl("SyncState", str("xs:string"))),
			opt(mEl("Ignore", &ctype{name: "t:ArrayOfBaseItemIdsType", seq: seq(choice(0, unbounded, tEl("ItemId", itemID)))})),
			one(mEl("MaxChangesReturned", textType("t:MaxSyncChangesReturnedType", intRange(1, 512)))),
			opt(mEl("SyncScope", textType("t:SyncFolderItemsScopeType", enum("NormalItems", "NormalAndAssociatedItems"))))),
		},
	}

	// --- SOAP header entries (types.xsd: RequestServerVersion,
	// ExchangeImpersonationType/ConnectingSIDType, MailboxCulture,
	// TimeZoneContext, DateTimePrecision). Header entries are not in a
	// sequence: SOAP 1.1 section 4.2 lets them come in any order.
	connectingSID := &ctype{name: "t:ConnectingSIDType", seq: seq(choice(1, 1,
		tEl("PrincipalName", nonEmptyT), tEl("SID", nonEmptyT), tEl("PrimarySmtpAddress", nonEmptyT), tEl("SmtpAddress", nonEmptyT)))}
	header := map[string]*elem{
		"RequestServerVersion":  tEl("RequestServerVersion", &ctype{name: "RequestServerVersion", anyAttrNS: soapAttrs, attrs: []attrDecl{{"Version", true, enum(strings.Fields(exchangeVersions)...)}}}),
		"ExchangeImpersonation": tEl("ExchangeImpersonation", &ctype{name: "t:ExchangeImpersonationType", anyAttrNS: soapAttrs, seq: seq(one(tEl("ConnectingSID", connectingSID)))}),
		"MailboxCulture":        tEl("MailboxCulture", &ctype{name: "t:MailboxCultureType", anyAttrNS: soapAttrs, text: nonEmpty}),
		"TimeZoneContext":       tEl("TimeZoneContext", laxType()),
		"DateTimePrecision":     tEl("DateTimePrecision", textType("t:DateTimePrecisionType", enum("Seconds", "Milliseconds"))),
	}
	for _, e := range ni(nsTypes, "ManagementRole", "SerializedSecurityContext", "OpenAsAdminOrSystemService", "SharingSecurity", "ProxySecurityContext", "ProxySuggesterSid", "ProxyPartnerToken") {
		header[e.name] = e
	}
	opElems := make(map[string]*elem, len(ops))
	for name, t := range ops {
		opElems[name] = mEl(name, t)
	}
	known := map[string]bool{}
	for _, n := range strings.Fields(declaredOperations) {
		known[n] = true
	}
	return &schema{header: header, ops: opElems, knownOps: known}
}
