// Package all is the one list of connector backends. Everything that
// opens a mailbox (mailferry copy and status, the service's workers, the
// portal's checks) gets its registry here; adding a connector touches its
// own package and one line of Registry.
package all

import (
	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/eml"
	"github.com/mailferry/mailferry/internal/connector/ews"
	"github.com/mailferry/mailferry/internal/connector/graph"
	"github.com/mailferry/mailferry/internal/connector/imap"
	"github.com/mailferry/mailferry/internal/connector/maildir"
	"github.com/mailferry/mailferry/internal/connector/mbox"
	"github.com/mailferry/mailferry/internal/connector/pop3"
)

// Registry returns a registry of every backend. It is built anew on each
// call (there is no package-level state); building it is cheap.
func Registry() *connector.Registry {
	r, err := connector.NewRegistry(
		imap.Backend(),
		pop3.Backend(),
		maildir.Backend(),
		mbox.Backend(),
		eml.Backend(),
		ews.Backend(),
		graph.Backend(),
	)
	if err != nil {
		// Two backends claiming one scheme is a defect of this list,
		// caught by TestRegistry, never a runtime condition.
		panic(err)
	}
	return r
}
