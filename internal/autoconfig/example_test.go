package autoconfig_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/mailferry/mailferry/internal/autoconfig"
)

// The portal builds one Finder at start-up with the operator's outbound
// policy as its Dial hook (a plain net.Dialer stands in for it here) and
// calls Lookup when the user has typed an address.
func ExampleFinder_Lookup() {
	var d net.Dialer // in the service: netpolicy.New(cfg).DialContext
	finder := autoconfig.New(autoconfig.Options{
		Dial:      d.DialContext,
		DNSServer: "127.0.0.53:53",
		Timeout:   4 * time.Second,
	})
	res, err := finder.Lookup(context.Background(), "alice@example.com")
	if err != nil {
		fmt.Println(err) // not an email address; the message says what to type
		return
	}
	for _, c := range res.Candidates {
		fmt.Println(c.Protocol, c.Host, c.Port, c.Security, c.Username, c.Confidence)
	}
	for _, n := range res.Notes {
		fmt.Println(n.Method, n.Where, n.Text)
	}
}
