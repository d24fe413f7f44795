package layer_test

import (
	"context"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/conntest"
	"github.com/mailferry/mailferry/internal/connector/layer"
	"github.com/mailferry/mailferry/internal/connector/maildir"
)

// A connector wrapped in the retry and limit layers still passes the
// suite: the layers pass every call and ability through.
func TestLayersPassTheSuite(t *testing.T) {
	conntest.Run(t, conntest.Harness{NewMailbox: func(t *testing.T) connector.Conn {
		e, err := maildir.Parse("maildir:" + t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		c, err := maildir.Open(context.Background(), e, connector.OpenOptions{Role: connector.RoleDestination})
		if err != nil {
			t.Fatal(err)
		}
		r := layer.NewRetrier(layer.Policy{Side: "destination", Budget: time.Minute})
		return layer.Retry(layer.Limit(c, 3, nil), r)
	}})
}
