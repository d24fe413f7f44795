package ewsserver

import "time"

// FaultScope says where an injected fault shows.
type FaultScope int

const (
	// FaultSOAP answers the whole request with HTTP 500 and a SOAP fault,
	// the way Exchange reports ErrorServerBusy and the other throttling
	// errors (ews-throttling-in-exchange, table 4).
	FaultSOAP FaultScope = iota
	// FaultMessages answers HTTP 200 with ResponseClass="Error" in every
	// response message, the schema-based error response.
	FaultMessages
	// FaultItems makes single items fail with ResponseClass="Error" while
	// the others in the same request succeed; Count counts items, not
	// requests. It applies to CreateItem, GetItem, UpdateItem and
	// DeleteItem.
	FaultItems
)

// Fault is an error a test makes the server return.
type Fault struct {
	// Op is the operation to fail, e.g. "CreateItem"; empty means any.
	Op string
	// Count is how many matching requests (items, for FaultItems) fail;
	// zero or less means every one until ClearFaults.
	Count int
	// HTTPStatus, if set, answers with this status and no SOAP body:
	// 503 as IIS does when EWS requests queue up, 401 as when the
	// password changed (it also forgets the connection's NTLM login).
	HTTPStatus int
	// Code is the EWS response code, e.g. ErrorServerBusy,
	// ErrorExceededConnectionCount, ErrorTooManyObjectsOpened,
	// ErrorItemSave, ErrorMailboxStoreUnavailable.
	Code string
	// Text is the MessageText or faultstring; empty uses Exchange's.
	Text string
	// BackOff adds <t:Value Name="BackOffMilliseconds"> to the fault's
	// MessageXml (for HTTP 503, a Retry-After header in seconds).
	BackOff time.Duration
	Scope   FaultScope
}

type faultRule struct {
	Fault
	left int // remaining; negative: unlimited
}

// Inject adds a fault. Faults are tried in the order they were added;
// the first matching one fires.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	left := f.Count
	if left <= 0 {
		left = -1
	}
	s.faults = append(s.faults, &faultRule{Fault: f, left: left})
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// takeFault consumes a request-level fault for op. With early set it
// considers only HTTP faults for any operation, which fire before the
// request is authenticated or read.
func (s *Server) takeFault(op string, early bool) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.faults {
		if r.left == 0 || r.Scope == FaultItems {
			continue
		}
		if early && !(r.Op == "" && r.HTTPStatus != 0) {
			continue
		}
		if !early && r.Op != "" && r.Op != op {
			continue
		}
		if r.left > 0 {
			r.left--
		}
		f := r.Fault
		return &f
	}
	return nil
}

// itemFault consumes an item-level fault for op. The caller holds s.mu.
func (s *Server) itemFault(op string) *itemError {
	for _, r := range s.faults {
		if r.left == 0 || r.Scope != FaultItems || (r.Op != "" && r.Op != op) {
			continue
		}
		if r.left > 0 {
			r.left--
		}
		return &itemError{code: r.Code, text: faultText(&r.Fault), backOff: r.BackOff.Milliseconds()}
	}
	return nil
}

func faultText(f *Fault) string {
	if f.Text != "" {
		return f.Text
	}
	return errorText(f.Code)
}
