package jobs

import (
	"errors"
	"testing"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/service"
)

// A login that works but lacks a right (Graph's 403 for a missing
// Mail.ReadWrite) is the "permission" Solve Issue, not "other".
func TestFailedPermissionClass(t *testing.T) {
	err := connector.Errorf(connector.KindPermission, "grant Mail.ReadWrite", errors.New("403 ErrorAccessDenied"), "check write access")
	o := failed(service.Work{}, service.SideDestination, err)
	if o.Class != service.ClassPermission || o.Side != service.SideDestination {
		t.Fatalf("outcome %+v", o)
	}
}
