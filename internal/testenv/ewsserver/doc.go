// Package ewsserver is an in-process Exchange Web Services server for
// tests: the stand-in for an on-premises Exchange 2016 that cannot run on
// a CI machine.
//
// It is written from Microsoft's documentation (the operation pages under
// learn.microsoft.com/exchange/client-developer/web-service-reference and
// the types.xsd/messages.xsd schemas), not from any EWS client, and it is
// strict where Exchange is: a request with a wrong namespace, an unknown
// or missing element, elements out of schema order or a value outside its
// type is answered with an HTTP 500 ErrorSchemaValidation fault, and what
// is valid EWS but not implemented here is refused with
// ErrorNotImplementedInTestServer rather than ignored. LIMITS.md lists
// what is supported, what each part was checked against, and what real
// Exchange does differently.
//
// Use:
//
//	srv := ewsserver.New(&ewsserver.Options{TB: t})
//	srv.AddUser("alice@example.com", ewsserver.UserOptions{Password: "pw"})
//	if err := srv.Start(); err != nil {
//		t.Fatal(err)
//	}
//	// point the client at srv.URL(), trusting srv.CertPool()
//
// Accounts log in with Basic or NTLMv2 over TLS. Tests seed mailboxes
// through Mailbox (AddItem, CreateFolder), inspect what a client stored
// (exact MIME bytes, draft state, PR_MESSAGE_FLAGS, delivery time, flag
// status, folder), count requests per operation, hold requests in
// progress with Block, and make the server fail with Inject (ErrorServerBusy
// with BackOffMilliseconds, HTTP 503, HTTP 401, ErrorExceededConnectionCount,
// ErrorTooManyObjectsOpened, per-item errors). A message a client asks to
// send is recorded in Sent and, with Options.TB set, fails the test.
package ewsserver
