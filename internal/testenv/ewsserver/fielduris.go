package ewsserver

// unindexedFieldURIs is the enumeration UnindexedFieldURIType of types.xsd:
// every value a t:FieldURI FieldURI attribute may take. A value outside it
// fails schema validation; a value inside it that this server does not
// implement is refused as not implemented (see props.go).
const unindexedFieldURIs = `
	folder:FolderId folder:ParentFolderId folder:DisplayName
	folder:UnreadCount folder:TotalCount folder:ChildFolderCount
	folder:FolderClass folder:SearchParameters
	folder:ManagedFolderInformation folder:PermissionSet
	folder:EffectiveRights folder:SharingEffectiveRights
	folder:DistinguishedFolderId folder:PolicyTag folder:ArchiveTag
	folder:ReplicaList item:ItemId item:ParentFolderId item:ItemClass
	item:MimeContent item:Attachments item:Subject item:DateTimeReceived
	item:Size item:Categories item:HasAttachments item:Importance
	item:InReplyTo item:InternetMessageHeaders item:IsAssociated
	item:IsDraft item:IsFromMe item:IsResend item:IsSubmitted
	item:IsUnmodified item:DateTimeSent item:DateTimeCreated item:Body
	item:ResponseObjects item:Sensitivity item:ReminderDueBy
	item:ReminderIsSet item:ReminderNextTime item:ReminderMinutesBeforeStart
	item:DisplayTo item:DisplayCc item:DisplayBcc item:Culture
	item:EffectiveRights item:LastModifiedName item:LastModifiedTime
	item:ConversationId item:UniqueBody item:Flag item:StoreEntryId
	item:InstanceKey item:NormalizedBody item:EntityExtractionResult
	item:PolicyTag item:ArchiveTag item:RetentionDate item:Preview
	item:PredictedActionReasons item:IsClutter
	item:RightsManagementLicenseData item:BlockStatus item:HasBlockedImages
	item:WebClientReadFormQueryString item:WebClientEditFormQueryString
	item:TextBody item:IconIndex item:MimeContentUTF8 item:Mentions
	item:MentionedMe item:MentionsPreview item:MentionsEx item:Hashtags
	item:AppliedHashtags item:AppliedHashtagsPreview item:Likes
	item:LikesPreview item:PendingSocialActivityTagIds item:AtAllMention
	item:CanDelete item:InferenceClassification item:FirstBody
	message:ConversationIndex message:ConversationTopic
	message:InternetMessageId message:IsRead message:IsResponseRequested
	message:IsReadReceiptRequested message:IsDeliveryReceiptRequested
	message:ReceivedBy message:ReceivedRepresenting message:References
	message:ReplyTo message:From message:Sender message:ToRecipients
	message:CcRecipients message:BccRecipients message:ApprovalRequestData
	message:VotingInformation message:ReminderMessageData
	message:PublishedCalendarItemIcs message:PublishedCalendarItemName
	message:MessageSafety sharingMessage:SharingMessageAction
	meeting:AssociatedCalendarItemId meeting:IsDelegated meeting:IsOutOfDate
	meeting:HasBeenProcessed meeting:ResponseType meeting:ProposedStart
	meeting:ProposedEnd meeting:DoNotForwardMeeting
	meetingRequest:MeetingRequestType meetingRequest:IntendedFreeBusyStatus
	meetingRequest:ChangeHighlights calendar:Start calendar:End
	calendar:OriginalStart calendar:StartWallClock calendar:EndWallClock
	calendar:StartTimeZoneId calendar:EndTimeZoneId calendar:IsAllDayEvent
	calendar:LegacyFreeBusyStatus calendar:Location
	calendar:EnhancedLocation calendar:When calendar:IsMeeting
	calendar:IsCancelled calendar:IsRecurring calendar:MeetingRequestWasSent
	calendar:IsResponseRequested calendar:CalendarItemType
	calendar:MyResponseType calendar:Organizer calendar:RequiredAttendees
	calendar:OptionalAttendees calendar:Resources
	calendar:ConflictingMeetingCount calendar:AdjacentMeetingCount
	calendar:ConflictingMeetings calendar:AdjacentMeetings
	calendar:InboxReminders calendar:Duration calendar:TimeZone
	calendar:AppointmentReplyTime calendar:AppointmentSequenceNumber
	calendar:AppointmentState calendar:Recurrence calendar:FirstOccurrence
	calendar:LastOccurrence calendar:ModifiedOccurrences
	calendar:DeletedOccurrences calendar:MeetingTimeZone
	calendar:ConferenceType calendar:AllowNewTimeProposal
	calendar:IsOnlineMeeting calendar:MeetingWorkspaceUrl
	calendar:NetShowUrl calendar:UID calendar:RecurrenceId
	calendar:DateTimeStamp calendar:StartTimeZone calendar:EndTimeZone
	calendar:JoinOnlineMeetingUrl calendar:OnlineMeetingSettings
	calendar:IsOrganizer calendar:CalendarActivityData
	calendar:DoNotForwardMeeting task:ActualWork task:AssignedTime
	task:BillingInformation task:ChangeCount task:Companies
	task:CompleteDate task:Contacts task:DelegationState task:Delegator
	task:DueDate task:IsAssignmentEditable task:IsComplete task:IsRecurring
	task:IsTeamTask task:Mileage task:Owner task:PercentComplete
	task:Recurrence task:StartDate task:Status task:StatusDescription
	task:TotalWork contacts:Alias contacts:AssistantName contacts:Birthday
	contacts:BusinessHomePage contacts:Children contacts:Companies
	contacts:CompanyName contacts:CompleteName contacts:ContactSource
	contacts:Culture contacts:Department contacts:DisplayName
	contacts:DirectoryId contacts:DirectReports contacts:EmailAddresses
	contacts:AbchEmailAddresses contacts:FileAs contacts:FileAsMapping
	contacts:Generation contacts:GivenName contacts:ImAddresses
	contacts:Initials contacts:JobTitle contacts:Manager
	contacts:ManagerMailbox contacts:MiddleName contacts:Mileage
	contacts:MSExchangeCertificate contacts:Nickname contacts:Notes
	contacts:OfficeLocation contacts:PhoneNumbers contacts:PhoneticFullName
	contacts:PhoneticFirstName contacts:PhoneticLastName contacts:Photo
	contacts:PhysicalAddresses contacts:PostalAddressIndex
	contacts:Profession contacts:SpouseName contacts:Surname
	contacts:WeddingAnniversary contacts:UserSMIMECertificate
	contacts:HasPicture contacts:AccountName contacts:IsAutoUpdateDisabled
	contacts:IsMessengerEnabled contacts:Comment contacts:ContactShortId
	contacts:ContactType contacts:CreatedBy contacts:Gender
	contacts:IsHidden contacts:ObjectId contacts:PassportId
	contacts:IsPrivate contacts:SourceId contacts:TrustLevel contacts:Urls
	contacts:Cid contacts:SkypeAuthCertificate contacts:SkypeContext
	contacts:SkypeId contacts:XboxLiveTag contacts:SkypeRelationship
	contacts:YomiNickname contacts:InviteFree
	contacts:HidePresenceAndProfile contacts:IsPendingOutbound
	contacts:SupportGroupFeeds contacts:UserTileHash contacts:UnifiedInbox
	contacts:Mris contacts:Wlid contacts:AbchContactId
	contacts:NotInBirthdayCalendar contacts:ShellContactType contacts:ImMri
	contacts:PresenceTrustLevel contacts:OtherMri
	contacts:ProfileLastChanged contacts:MobileIMEnabled
	distributionlist:Members contacts:PartnerNetworkProfilePhotoUrl
	contacts:PartnerNetworkThumbnailPhotoUrl contacts:PersonId
	contacts:ConversationGuid postitem:PostedTime person:FullName
	person:GivenName person:Surname person:PhoneNumber person:SMSNumber
	person:EmailAddress person:Alias person:Department
	person:LinkedInProfileLink person:Skills person:ProfessionalBiography
	person:ManagementChain person:DirectReports person:Peers person:TeamSize
	person:CurrentJob person:Birthday person:Hometown person:CurrentLocation
	person:CompanyProfile person:Office person:Headline
	person:MutualConnections person:Title person:MutualManager
	person:Insights person:UserProfilePicture rolemember:MemberType
	rolemember:MemberId rolemember:DisplayName
	network:TokenRefreshLastCompleted network:TokenRefreshLastAttempted
	network:SyncEnabled network:RejectedOffers network:SessionHandle
	network:RefreshTokenExpiry2 network:RefreshToken2 network:PsaLastChanged
	network:Offers network:LastWelcomeContact network:LastVersionSaved
	network:DomainTag network:FirstAuthErrorDates network:ErrorOffers
	network:ContactSyncSuccess network:ContactSyncError network:ClientToken2
	network:ClientToken network:ClientPublishSecret network:UserEmail
	network:AutoLinkSuccess network:AutoLinkError network:IsDefault
	network:Settings network:ProfileUrl network:UserTileUrl network:DomainId
	network:DisplayName network:AccountName network:SourceEntryID
	abchperson:FavoriteOrder abchperson:PersonId
	abchperson:ExchangePersonIdGuid abchperson:AntiLinkInfo
	abchperson:RelevanceOrder1 abchperson:RelevanceOrder2
	abchperson:ContactHandles abchperson:Categories booking:ServiceIds
	booking:StaffIds booking:StaffInitials booking:CustomerName
	booking:CustomerEmail booking:CustomerPhone booking:CustomerId
	insight:InsightId insight:Type insight:StartTimeUtc insight:EndTimeUtc
	insight:Status insight:Version insight:ApplicationsIds insight:Text
	insight:SuggestedActions insight:AppContexts
`
